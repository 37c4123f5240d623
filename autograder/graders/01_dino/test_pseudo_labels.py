"""Part VI: pseudo-label counts (the argmax histogram, against the reference and on toy cases)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from autograder.runtime.checks import expect, fmt

from .cases import pseudo_label_case


def test_counts_match_the_reference(ns, values):
    """A random model on random images gives the reference's counts"""
    got, expected = pseudo_label_case(ns), values["counts"]
    expect(got == expected, f"expected counts {fmt(expected)}, got {fmt(got)}",
           "Count, for every output dimension, the images whose largest output it is")


def test_counts_are_an_integer_histogram_of_the_argmax(ns):
    """The result has shape (out_dim,), integer counts summing to the number of images, in batches"""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(37, 3, 28, 28, generator=gen)
    dataset = TensorDataset(images, torch.zeros(37, 1, dtype=torch.long))
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 5))
    counts = ns.pseudo_label_counts(model, dataset, torch.device("cpu"), batch_size=8)
    with torch.no_grad():
        expected = torch.bincount(model(images).argmax(dim=-1), minlength=5)
    expect(isinstance(counts, torch.Tensor), f"expected a tensor, got {type(counts).__name__}")
    expect(tuple(counts.shape) == (5,), f"expected shape (5,) for out_dim 5, got {tuple(counts.shape)}")
    expect(not counts.is_floating_point(), f"expected integer counts, got {counts.dtype}")
    expect(int(counts.sum()) == 37, f"the counts sum to {int(counts.sum())}, expected 37 (every image once)",
           "Go over all batches, including the last, smaller one")
    expect(counts.tolist() == expected.tolist(), f"expected {expected.tolist()}, got {counts.tolist()}")


def test_unused_dimensions_are_kept_and_the_model_runs_in_eval_mode(ns):
    """Unused output dimensions count 0 (minlength) and the model runs in eval mode"""
    dataset = TensorDataset(torch.randn(10, 4), torch.zeros(10, 1, dtype=torch.long))
    linear = nn.Linear(4, 6)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0, 0.0]))
    model = nn.Sequential(linear, nn.Dropout(0.9))  # in train mode, dropout would scramble the argmax
    model.train()
    counts = ns.pseudo_label_counts(model, dataset, torch.device("cpu"))
    expect(list(counts.shape) == [6], f"expected shape (6,), got {tuple(counts.shape)}",
           "Use torch.bincount(..., minlength=out_dim)")
    expect(counts.tolist() == [0, 0, 10, 0, 0, 0], f"expected [0, 0, 10, 0, 0, 0], got {counts.tolist()}",
           "Put the model in eval mode (model.eval()) before the forward passes")
