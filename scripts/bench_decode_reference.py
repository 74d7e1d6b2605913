#!/usr/bin/python3
"""The ImageFolder pipeline of torchvision's ImageNet recipe, timed on one core: PIL decode
(torchvision's default loader), RandomResizedCrop(224) + RandomHorizontalFlip, or Resize(256) +
CenterCrop(224), then ToTensor + Normalize, batched by a DataLoader without worker processes.
Usage: bench_decode_reference.py FOLDER   (the folder `qrobust bench --decode FOLDER` made)."""
import json, sys, time

import torch
from torchvision import datasets, transforms

torch.set_num_threads(1)
normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
pipelines = {
    "train": transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                 transforms.ToTensor(), normalize]),
    "eval": transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize]),
}
result = {"benchmark": "jpeg_decode_torchvision", "threads": 1, "torch": torch.__version__}
for name, transform in pipelines.items():
    dataset = datasets.ImageFolder(sys.argv[1] + "/train", transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=name == "train", num_workers=0)
    dataset[0]  # warm-up
    start, count = time.perf_counter(), 0
    for _ in range(3):  # three passes, as qrobust's benchmark does
        for images, _ in loader:
            count += images.shape[0]
    result[name + "_transform_images_per_second"] = count / (time.perf_counter() - start)
print(json.dumps(result, indent=2))
