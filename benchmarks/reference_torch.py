"""The tutorial CNN and ResNet-34 written in plain PyTorch: the peer framework in the benchmarks.

Same layers, shapes and parameter counts as ``zoo.create("cnn")`` and ``zoo.create("resnet34")``
(small stem for 28x28x1; ``stem="imagenet"`` gives the 7x7/2 + max-pool stem). Inputs are raw
pixels in [0, 255] (float or uint8), divided by 255 inside ``forward`` like zoo's ``Rescaling``
layer. The models return logits (train with ``nn.CrossEntropyLoss``); the Keras models end in a
softmax and train with sparse categorical cross-entropy, which is the same computation.

Used by ``benchmarks/run.py`` (CPU) and, when torchvision is missing, by ``benchmarks/gpu.py``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CNN", "BasicBlock", "ResNet34", "build", "count_params"]


def _he_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CNN(nn.Module):
    """Conv64(7x7) - pool - Conv128 - Conv128 - pool - Dense128 - Dense64 - Dense(num_classes)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, padding=3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = image_size // 2 // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * side * side, 128), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(128, 64), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(64, num_classes),
        )
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.float() / 255.0))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (1x1 conv + BN projected) skip, then ReLU."""

    def __init__(self, in_channels: int, filters: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, filters, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.relu = nn.ReLU(inplace=True)
        self.skip: nn.Module = nn.Identity()
        if stride > 1 or in_channels != filters:
            self.skip = nn.Sequential(
                nn.Conv2d(in_channels, filters, 1, stride=stride, bias=False), nn.BatchNorm2d(filters)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.relu(self.bn1(self.conv1(x)))
        z = self.bn2(self.conv2(z))
        return self.relu(z + self.skip(x))


class ResNet34(nn.Module):
    """ResNet-34: BasicBlocks 3x64, 4x128, 6x256, 3x512, global average pooling, linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, stem: str = "small"):
        super().__init__()
        if stem == "small":
            layers = [nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        elif stem == "imagenet":
            layers = [
                nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
        else:
            raise ValueError(f"`stem` must be 'small' or 'imagenet'. Received: stem={stem!r}")
        self.stem = nn.Sequential(*layers)
        blocks, previous = [], 64
        for filters in [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3:
            stride = 1 if filters == previous else 2
            blocks.append(BasicBlock(previous, filters, stride))
            previous = filters
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x.float() / 255.0))
        return self.fc(torch.flatten(self.pool(x), 1))


def build(name: str, input_shape=(28, 28, 1), num_classes: int = 10, stem: str = "small") -> nn.Module:
    """``"cnn"`` or ``"resnet34"`` for an (H, W, C) input shape, like the Keras builders."""
    height, _, channels = input_shape
    if name == "cnn":
        return CNN(channels, num_classes, image_size=height)
    if name == "resnet34":
        return ResNet34(channels, num_classes, stem=stem)
    raise ValueError(f"No PyTorch reference for {name!r}; known: cnn, resnet34")


def count_params(model: nn.Module) -> int:
    """Trainable parameters (Keras' count also includes BN moving statistics)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
