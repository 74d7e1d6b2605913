#!/usr/bin/python3
"""The ResNet-20 training step of `qrobust bench` written in Python PyTorch, for comparison.

Same architecture (He et al. 2016, option A shortcuts, fan-out He init), same synthetic batch
shape, SGD with momentum 0.9 and weight decay 5e-4, all cores. Run with Debian's python3-torch:
    /usr/bin/python3 scripts/bench_pytorch_reference.py --batch 128 --steps 20
Prints JSON with img/s for a training step and for inference.
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.pad = (cout - cin) // 2

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x
        if self.stride != 1 or self.pad:
            identity = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + identity)


class ResNetCifar(nn.Module):
    def __init__(self, n=3, width=16, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage, cout in enumerate([width, 2 * width, 4 * width]):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def seconds_per_step(step, warmup, steps):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ResNetCifar()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(args.batch, 3, 32, 32)
    targets = torch.randint(0, 10, (args.batch,))

    def train_step():
        optimizer.zero_grad()
        F.cross_entropy(model(images), targets).backward()
        optimizer.step()

    def inference_step():
        with torch.no_grad():
            model(images)

    model.train()
    train = seconds_per_step(train_step, 3, args.steps)
    model.eval()
    infer = seconds_per_step(inference_step, 3, args.steps)
    print(json.dumps({"implementation": "python-pytorch " + torch.__version__, "model": "resnet20",
                      "batch": args.batch, "steps": args.steps, "threads": torch.get_num_threads(),
                      "train_images_per_second": args.batch / train,
                      "inference_images_per_second": args.batch / infer}, indent=2))


if __name__ == "__main__":
    main()
