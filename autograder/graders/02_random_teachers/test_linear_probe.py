"""Part IV: the linear probe (an nn.Linear trained for the given epochs with AdamW on shuffled mini-batches)."""

from __future__ import annotations

import torch
from torch import nn

from autograder.checks import expect, fmt

from .cases import PROBE_CASE, linear_probe_case, probe_data

HINT = ("Train nn.Linear(D, num_classes) with AdamW (default settings) and cross-entropy for `epochs` passes over "
        "the training set, each in shuffled mini-batches of batch_size; clear the gradients before every step")


def test_returns_a_linear_layer_with_num_classes_outputs(ns):
    """The probe is an nn.Linear(D, num_classes)"""
    train_x, train_y, _, _ = probe_data()
    layer = ns.train_linear_probe(train_x, train_y, 8, epochs=1, batch_size=64)
    expect(isinstance(layer, nn.Linear), f"train_linear_probe must return an nn.Linear, got {type(layer).__name__}")
    expect((layer.in_features, layer.out_features) == (train_x.shape[1], 8),
           f"expected nn.Linear({train_x.shape[1]}, 8) for num_classes=8 (the labels use only 0-4), got "
           f"nn.Linear({layer.in_features}, {layer.out_features})", "The number of outputs is num_classes")


def test_features_are_left_alone(ns):
    """The features and labels are not changed and get no gradient"""
    train_x, train_y, _, _ = probe_data()
    kept = train_x.clone(), train_y.clone()
    ns.train_linear_probe(train_x, train_y, PROBE_CASE["classes"], epochs=1, batch_size=64)
    expect(torch.equal(train_x, kept[0]) and torch.equal(train_y, kept[1]), "train_linear_probe changed its inputs")
    expect(not train_x.requires_grad, "the features require a gradient after train_linear_probe")


def test_trained_as_long_as_asked(ns, values):
    """After 10 epochs the training loss is as low as the reference's (1 epoch leaves it much higher)"""
    got = linear_probe_case(ns, 10)
    ten, one = values["10"]["train_loss"], values["1"]["train_loss"]
    limit = ten + 0.25 * (one - ten)
    expect(got["train_loss"] <= limit, f"after 10 epochs of batch {PROBE_CASE['batch_size']} the probe's training "
           f"loss is {fmt(got['train_loss'])}; the reference reaches {fmt(ten)} (and {fmt(one)} after one epoch), so "
           f"at most {fmt(limit)} was expected", HINT)
    expect(got["test_accuracy"] >= values["10"]["test_accuracy"] - 0.05, f"after 10 epochs the probe's accuracy on "
           f"held-out features is {got['test_accuracy']:.1%}, the reference's {values['10']['test_accuracy']:.1%}",
           HINT)


def test_one_epoch_is_one_epoch(ns, values):
    """With epochs=1 the probe trains one pass, not more"""
    got = linear_probe_case(ns, 1)
    ten, one = values["10"]["train_loss"], values["1"]["train_loss"]
    expect(got["train_loss"] >= ten + 0.5 * (one - ten), f"with epochs=1 the probe's training loss is "
           f"{fmt(got['train_loss'])}, about what 10 epochs give ({fmt(ten)}); one epoch gives {fmt(one)}",
           "Loop `epochs` times over the training set")
