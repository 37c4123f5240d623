"""The given networks of Assignment 2 and the bed: the encoders (dinocourse/models.py, torchvision's and timm's
constructors adapted to 28x28 images) and the projection head (given code of Assignment 2's notebook)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autograder.assignment.course import Assignment
from autograder.runtime.definitions import load_definitions
from dinocourse.models import ENCODERS, make_encoder


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    """Assignment 2's given and solution definitions (its setup and api cells)."""
    path = Assignment.load("02_random_teachers").solution_path
    return load_definitions(path, env={"DINO_MODE": "tiny", "DINO_RESULTS": str(tmp_path_factory.mktemp("r"))},
                            name="random_teachers_notebook")


@pytest.mark.parametrize("name", [n for n in ENCODERS if n != "vit_tiny"])
def test_every_encoder_takes_28x28_images(name):
    torch.manual_seed(0)
    encoder, dim = make_encoder(name)
    with torch.no_grad():
        out = encoder.eval()(torch.randn(2, 3, 28, 28))
    assert out.shape == (2, dim)


def test_the_resnet_has_the_cifar_stem_and_vgg_is_padded_to_32():
    resnet, _ = make_encoder("resnet18")
    assert (resnet.conv1.kernel_size, resnet.conv1.stride) == ((3, 3), (1, 1)) and isinstance(resnet.maxpool,
                                                                                              nn.Identity)
    vgg, _ = make_encoder("vgg11_bn")
    assert isinstance(vgg[0], nn.ZeroPad2d) and vgg[0].padding == (2, 2, 2, 2)
    assert any(isinstance(m, nn.BatchNorm2d) for m in vgg.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in make_encoder("vgg11")[0].modules())


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown encoder 'alexnet'.*resnet18"):
        make_encoder("alexnet")


def test_the_head_outputs_cosines_to_normalized_prototypes(rt):
    torch.manual_seed(0)
    head = rt.ProjectionHead(12, 50, hidden_dims=(16, 16), bottleneck_dim=8)
    with torch.no_grad():
        head.last_layer.weight.mul_(7)  # the rows' length does not matter: they are normalized in forward
        out = head(torch.randn(5, 12))
    assert out.shape == (5, 50) and out.abs().max() <= 1 + 1e-6
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 16), (16, 16), (16, 8)]
    assert head.last_layer.bias is None


def test_the_model_embeds_with_its_encoder(rt):
    torch.manual_seed(0)
    model = rt.DistillationModel("flatten", out_dim=10, hidden_dims=(32,), bottleneck_dim=4)
    x = torch.randn(3, 3, 28, 28)
    assert torch.equal(model.embed(x), x.flatten(1)) and model(x).shape == (3, 10)
