"""Part I: the DINO head (parameter counts, MLP, unit-sphere bottleneck, weight-normalized last layer)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from autograder.runtime.checks import expect, expect_close, fail

from .cases import head_parameter_counts, trainable

SEED_HEADS = [((10, 20), 336512), ((64, 32, 4, 256, 16), 152848), ((20, 10, 1), 3968)]


def make_head(ns, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the older weight-norm API warns; that is not an error
        return ns.DINOHead(*args)


def run_mlp(mlp, x):
    """The head's MLP applied to x (a Sequential, or a ModuleList run layer by layer)."""
    if isinstance(mlp, nn.ModuleList) and type(mlp).forward is nn.ModuleList.forward and "forward" not in vars(mlp):
        for layer in mlp:
            x = layer(x)
        return x
    return mlp(x)


def lengths_of(layer):
    """The weight-norm lengths (g) of a layer, for the current and the older weight-norm API."""
    return [p for name, p in layer.named_parameters() if name.endswith(("original0", "weight_g"))]


@pytest.mark.parametrize("args, n_params", SEED_HEADS)
def test_seed_parameter_counts_and_output_shapes(ns, args, n_params):
    """The original assignment's heads have its parameter counts and output shapes"""
    head = make_head(ns, *args)
    expect(trainable(head) == n_params, f"DINOHead{args}: expected {n_params} trainable parameters, "
           f"got {trainable(head)}", "Check the layer sizes, that the last layer has no bias and that its "
           "weight-norm lengths are not trainable")
    y = head(torch.randn(32, args[0]))
    expect(tuple(y.shape) == (32, args[1]), f"DINOHead{args}: expected output shape (32, {args[1]}), got "
           f"{tuple(y.shape)}")


def test_parameter_counts_match_the_reference(ns, values):
    """More configurations (1 to 5 layers) have the reference's trainable parameter counts"""
    got = head_parameter_counts(ns)
    for config, expected in values["parameter_counts"].items():
        expect(got[config] == expected, f"DINOHead{config}: expected {expected} trainable parameters, got "
               f"{got[config]}", "nlayers counts every Linear layer of the MLP, the first from in_dim and the last "
               "to bottleneck_dim (with nlayers=1 a single Linear from in_dim to bottleneck_dim)")


@pytest.mark.parametrize("nlayers", [1, 2, 4])
def test_mlp_has_nlayers_linear_layers_with_gelu_between(ns, nlayers):
    """self.mlp has nlayers Linear layers with a GELU between two of them and none after the last"""
    head = make_head(ns, 6, 5, nlayers, 10, 4)
    expect(hasattr(head, "mlp"), "the head has no attribute `mlp`", "Store the MLP as self.mlp")
    linears = [m for m in head.mlp.modules() if isinstance(m, nn.Linear)]
    expect(len(linears) == nlayers, f"DINOHead(6, 5, nlayers={nlayers}): expected {nlayers} Linear layers in "
           f"self.mlp, got {len(linears)}")
    x = torch.randn(3, 6)
    expected = x
    for i, linear in enumerate(linears):
        expected = linear(expected)
        if i < len(linears) - 1:
            expected = F.gelu(expected)
    expect_close(run_mlp(head.mlp, x), expected, f"self.mlp(x) with nlayers={nlayers}",
                 "Put a GELU after every Linear layer of the MLP except the last one")


def test_forward_normalizes_the_bottleneck_before_the_last_layer(ns):
    """forward(x) is last_layer(x' / |x'|) with x' = mlp(x)"""
    head = make_head(ns, 12, 9, 3, 24, 6)
    expect(hasattr(head, "last_layer"), "the head has no attribute `last_layer`", "Store it as self.last_layer")
    x = 5 * torch.randn(4, 12)
    expected = head.last_layer(F.normalize(run_mlp(head.mlp, x), dim=-1))
    expect_close(head(x), expected, "forward(x)", "Normalize the MLP's output to unit length (L2, over the last "
                 "dimension) before the last layer")


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_every_output_lies_in_minus_one_one(ns, scale):
    """Every output lies in [-1, 1] for small and huge inputs (unit bottleneck, unit weight rows)"""
    head = make_head(ns, 12, 64, 3, 24, 6)
    y = head(scale * torch.randn(256, 12)).detach()
    expect(float(y.abs().max()) <= 1 + 1e-5, f"inputs of scale {scale}: expected every output in [-1, 1], got "
           f"a largest |output| of {float(y.abs().max()):.4g}", "Normalize the bottleneck and keep the weight-norm "
           "lengths at 1")
    expect(float(y.abs().max()) > 0.05, f"inputs of scale {scale}: the outputs are all (nearly) zero")


def test_last_layer_has_no_bias_and_frozen_unit_lengths(ns):
    """The last layer has no bias, its weight-norm lengths start at 1, are frozen and stay 1 in training"""
    head = make_head(ns, 16, 8, 2, 32, 4)
    last = head.last_layer
    expect(getattr(last, "bias", None) is None, "the last layer has a bias", "Use bias=False")
    lengths = lengths_of(last)
    if len(lengths) != 1:
        fail("the last layer is not weight-normalized (no parameter `parametrizations.weight.original0`)",
             "Wrap it with nn.utils.parametrizations.weight_norm")
    expect(not lengths[0].requires_grad, "the weight-norm lengths (g) are trainable", "Set requires_grad = False")
    expect_close(lengths[0].detach().flatten(), torch.ones(8), "the weight-norm lengths (g) after __init__",
                 "Fill them with 1")
    optim = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        optim.zero_grad()
        head(torch.randn(8, 16)).pow(2).sum().backward()
        optim.step()
    head(torch.randn(2, 16))
    expect_close(last.weight.norm(dim=1), torch.ones(8), "length of every row of the last layer's weight after "
                 "3 optimizer steps", "The lengths must not be trained")
