"""Part I: the DINO head, the wrapped ViT and the EMA teacher."""

from __future__ import annotations

import warnings

import pytest
import torch

SEED_HEADS = [((10, 20), 336512), ((64, 32, 4, 256, 16), 152848), ((20, 10, 1), 3968)]


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("args, n_params", SEED_HEADS)
def test_head_parameter_counts_and_shapes_match_the_seed(nb, args, n_params, seeded):
    head = nb.DINOHead(*args)
    assert trainable(head) == n_params
    assert head(torch.randn(32, args[0])).shape == (32, args[1])


def test_head_builds_and_runs_without_any_warning(nb, seeded):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would reach stderr, which nbgrader scores as a failure
        head = nb.DINOHead(16, 8)
        head(torch.randn(4, 16)).sum().backward()


def lengths_of(layer):
    """The weight-norm lengths (g) of a layer, for the current and the older weight-norm API."""
    return [p for name, p in layer.named_parameters() if name.endswith(("original0", "weight_g"))]


def test_weight_norm_lengths_start_at_one_and_are_never_trained(nb, seeded):
    head = nb.DINOHead(16, 8, nlayers=2, hidden_dim=32, bottleneck_dim=4)
    assert head.last_layer.bias is None
    (lengths,) = lengths_of(head.last_layer)
    assert not lengths.requires_grad
    torch.testing.assert_close(lengths.detach().flatten(), torch.ones(8))
    optim = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        optim.zero_grad()
        head(torch.randn(8, 16)).pow(2).sum().backward()
        optim.step()
    head(torch.randn(2, 16))
    # every row of the effective weight still has unit length
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(8))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_unit_sphere_bottleneck_bounds_every_logit_by_one(nb, scale, seeded):
    head = nb.DINOHead(12, 64, nlayers=3, hidden_dim=24, bottleneck_dim=6)
    y = head(scale * torch.randn(256, 12))
    assert y.abs().max() <= 1 + 1e-5
    assert y.abs().max() > 0.1  # not trivially zero


def test_vit_tiny_dino_maps_images_to_out_dim_and_has_under_6m_parameters(nb, seeded):
    model = nb.ViTTinyDINO(out_dim=32)
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 32)
    assert model.encoder(torch.randn(2, 3, 28, 28)).shape == (2, 192)
    assert trainable(model.encoder) < 6e6


def test_ema_teacher_starts_as_the_student_and_follows_it_arithmetically(nb, seeded):
    student, teacher = nb.ViTTinyDINO(16), nb.ViTTinyDINO(16)
    ema = nb.EMAWrapper(student, teacher, momentum=0.9)
    assert all(not p.requires_grad for p in ema.parameters())
    for (name, s), (_, t) in zip(student.named_parameters(), ema.model.named_parameters(), strict=True):
        torch.testing.assert_close(s, t, msg=name)
    before = {n: p.detach().clone() for n, p in ema.model.named_parameters()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    ema.update(student)
    for name, s in student.named_parameters():
        expected = 0.9 * before[name] + 0.1 * s.detach()
        torch.testing.assert_close(dict(ema.model.named_parameters())[name], expected, msg=name)
