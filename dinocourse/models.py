"""The encoders of Assignment 2 and of the experiment bed (given code), for 28x28 images, built from torchvision's and
timm's own constructors (the projection head is Assignment 2's given code: it is close to Assignment 1's answer).

* ``resnet18``: torchvision's ResNet-18 with the CIFAR stem (a 3x3 convolution of stride 1 and no max-pool), as the
  study uses for 32x32 images; it takes 28x28 images as they are.
* ``vgg11_bn`` / ``vgg11``: torchvision's VGG-11 (with / without BatchNorm) convolutional part; its five max-pools
  need 32x32 inputs, so 28x28 images are zero-padded by 2 pixels on every side first.
* ``vit_tiny``: the ViT-tiny of Assignment 1 (timm, patch size 4, 28x28 images).
* ``flatten``: raw pixels, for a baseline.
"""

from __future__ import annotations

from collections.abc import Callable

import torchvision
from timm.models.vision_transformer import VisionTransformer
from torch import nn


def resnet18() -> nn.Module:
    net = torchvision.models.resnet18()
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)  # the CIFAR stem
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def _vgg11(batch_norm: bool) -> nn.Module:
    vgg = torchvision.models.vgg11_bn() if batch_norm else torchvision.models.vgg11()
    return nn.Sequential(nn.ZeroPad2d(2), vgg.features, nn.Flatten())  # 28x28 -> 32x32 -> 512x1x1


def vit_tiny() -> nn.Module:
    return VisionTransformer(patch_size=4, embed_dim=192, depth=12, num_heads=3, img_size=28, in_chans=3,
                             num_classes=0, pre_norm=True)


ENCODERS: dict[str, tuple[Callable[[], nn.Module], int]] = {  # name: (constructor, feature dimension)
    "resnet18": (resnet18, 512),
    "vgg11_bn": (lambda: _vgg11(True), 512),
    "vgg11": (lambda: _vgg11(False), 512),
    "vit_tiny": (vit_tiny, 192),
    "flatten": (nn.Flatten, 3 * 28 * 28),
}


def make_encoder(name: str) -> tuple[nn.Module, int]:
    """A freshly initialized encoder (drawn from torch's global random state) and its feature dimension."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}")
    constructor, dim = ENCODERS[name]
    return constructor(), dim
