#!/usr/bin/python3
"""Loads a qrobust checkpoint of an ImageNet ResNet into torchvision's model with
load_state_dict (strict) and checks that it computes the logits qrobust computed.
Usage: check_checkpoint_in_python.py CHECKPOINT IO_FILE   (IO_FILE: {"input", "logits"})."""
import sys

import torch
import torchvision

checkpoint = torch.load(sys.argv[1])
io = torch.load(sys.argv[2])
model = getattr(torchvision.models, checkpoint["architecture"])(num_classes=checkpoint["num_classes"])
model.load_state_dict(checkpoint["model"])
model.eval()
with torch.no_grad():
    logits = model(io["input"])
error = ((logits - io["logits"]).norm() / io["logits"].norm()).item()
print(f"relative error {error:.3g}")
sys.exit(0 if error < 1e-5 else 1)
