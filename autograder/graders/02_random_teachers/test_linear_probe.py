"""Part IV: the linear probe (an nn.Linear trained for the given epochs with AdamW on shuffled mini-batches)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autograder.runtime.checks import expect, fmt

from .cases import PROBE_CASE, linear_probe_case, probe_data, watched_probe

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


@pytest.mark.parametrize("epochs,batch_size", [(1, 64), (3, 16)])
def test_one_optimizer_step_per_mini_batch(ns, epochs, batch_size):
    """The optimizer steps once per mini-batch: epochs x ceil(N / batch_size) steps"""
    _, watch = watched_probe(ns, epochs, batch_size)
    n = PROBE_CASE["n"]
    per_epoch = math.ceil(n / batch_size)
    want = epochs * per_epoch
    if watch.steps == (epochs - 1) * per_epoch:
        hint = "That is one epoch too few: loop `for _ in range(epochs)`"
    elif watch.steps == epochs * (n // batch_size):
        hint = (f"The last, smaller mini-batch of each epoch ({n % batch_size} points) is missing: every pass covers "
                "the whole training set")
    else:
        hint = HINT
    expect(watch.steps == want, f"with {n} training points, epochs={epochs} and batch_size={batch_size} the optimizer "
           f"should take {epochs} x {per_epoch} = {want} steps (one per mini-batch, the last mini-batch of each epoch "
           f"smaller), it took {watch.steps}", hint)


def test_weight_and_bias_are_trained(ns):
    """The probe has a bias, and the optimizer trains the returned layer's weight and bias"""
    layer, watch = watched_probe(ns, 2, 32)
    expect(watch.steps > 0, "the optimizer never took a step", HINT)
    expect(isinstance(layer, nn.Linear), f"train_linear_probe must return an nn.Linear, got {type(layer).__name__}")
    expect(layer.bias is not None, "the probe has no bias (layer.bias is None)",
           "nn.Linear(D, num_classes) has a bias by default: keep it (no bias=False)")
    for name, param in (("weight", layer.weight), ("bias", layer.bias)):
        expect(watch.stepped(param), f"the optimizer never stepped the returned layer's {name}",
               "Give the optimizer layer.parameters() (weight and bias) and return that same layer")
        expect(watch.moved(param), f"the returned layer's {name} is what it was before the first optimizer step",
               "Every step must update the weight and the bias: the loss is computed with the layer's output")


def test_gradients_are_cleared_before_every_step(ns):
    """Each optimizer step follows the gradient of its own mini-batch only (the gradients are cleared in between)"""
    _, watch = watched_probe(ns, 2, 32)
    expect(watch.steps > 1, f"the optimizer took {watch.steps} step(s), expected one per mini-batch", HINT)
    expect(watch.stale_steps == 0, f"at {watch.stale_steps} of the {watch.steps} optimizer steps the gradient was not "
           "only that of the current mini-batch: it still held the gradients of earlier mini-batches",
           "backward() adds to the .grad of every parameter: call optimizer.zero_grad() before every loss.backward()")
