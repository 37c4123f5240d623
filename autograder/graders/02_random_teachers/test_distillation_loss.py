"""Part III: the distillation loss (CE and KL, pairings, temperatures, gradient to the student only)."""

from __future__ import annotations

import pytest
import torch

from autograder.runtime.checks import expect, expect_close

from .cases import LOSS_CASES, REPEATED_CALLS, loss_inputs, loss_value, repeated_call, repeated_loss_objects

HINTS = ("p_t = softmax(teacher / teacher_temp), log p_s = log_softmax(student / student_temp) over the last "
         "dimension; CE = -sum p_t log p_s, KL = CE - H(p_t) = sum p_t (log p_t - log p_s); the mean over the "
         "images of each (teacher view, student view) pair, then the mean over the pairs; views by torch.chunk")


@pytest.mark.parametrize("views,pairing,expected", [
    (1, "same", [(0, 0)]), (3, "same", [(0, 0), (1, 1), (2, 2)]),
    (3, "opposite", [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]),
    (2, "all", [(0, 0), (0, 1), (1, 0), (1, 1)])])
def test_pairs(ns, views, pairing, expected):
    """pairs() lists the (teacher view, student view) pairs of each pairing"""
    got = ns.DistillationLoss(views, pairing=pairing).pairs()
    try:
        got = sorted((int(t), int(s)) for t, s in got)
    except (TypeError, ValueError):
        expect(False, f"pairs() with {views} views, pairing {pairing!r}: expected a list of (teacher, student) "
               f"index pairs, got {got!r}")
    expect(got == expected, f"pairs() with {views} views, pairing {pairing!r}: expected {expected}, got {got}",
           "'same': (i, i); 'opposite': (i, j) with i != j; 'all': every (i, j)")


@pytest.mark.parametrize("name", LOSS_CASES)
def test_loss_and_gradient_equal_the_reference(ns, values, name):
    """The loss and the gradient of the student's outputs equal the reference's"""
    got = loss_value(ns, name)
    expect_close(got["loss"], values[name]["loss"], f"{name}: the loss", HINTS)
    expect_close(got["student_grad"], values[name]["student_grad"], f"{name}: the gradient of the student's "
                 "outputs", HINTS, atol=1e-5)


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def test_one_loss_object_gives_each_call_its_own_loss(ns, values):
    """One loss object, called again and again, gives each call the reference's loss and gradient

    A CE and a KL object are called in turns on new outputs, and at the end once more on outputs they had before."""
    objects = repeated_loss_objects(ns)
    wants = values["repeated calls"]
    expect(len(wants) == len(REPEATED_CALLS), "the reference values are out of date; report this to your instructor")
    calls = {"CE": 0, "KL": 0}
    hint = ("The loss must depend only on the outputs of the current call: forward must not keep anything between "
            "calls (no self.<attribute> set in forward: no cached teacher distribution, no list of earlier losses)")
    for number, ((kind, seed), want) in enumerate(zip(REPEATED_CALLS, wants, strict=True)):
        again = (kind, seed) in REPEATED_CALLS[:number]
        what = (f"call {number + 1} of {len(REPEATED_CALLS)} of one CE and one KL loss object in turns: the {kind} "
                f"object's {ORDINALS[calls[kind]]} call, on {'outputs it had before' if again else 'new outputs'}")
        calls[kind] += 1
        value, student = repeated_call(objects, kind, seed)
        expect_close(value, want["loss"], f"{what}: the loss", hint)
        value.backward()
        expect_close(student.grad, want["student_grad"], f"{what}: the gradient of the student's outputs", hint,
                     atol=1e-5)


def test_no_gradient_reaches_the_teacher(ns):
    """The teacher's outputs get no gradient"""
    case = LOSS_CASES["2 views, KL, opposite, 0.1 / 0.04"]
    student, teacher = loss_inputs(case)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    ns.DistillationLoss(2, "KL", "opposite", 0.1, 0.04)(student, teacher).backward()
    expect(teacher.grad is None or int(torch.count_nonzero(teacher.grad)) == 0,
           "a gradient flows back into the teacher's outputs",
           "The teacher's distribution is a fixed target: detach it")


def test_kl_is_zero_when_the_student_matches(ns):
    """KL is 0 (and CE the teacher's entropy) when the student's distribution equals the teacher's"""
    logits = torch.randn(2 * 6, 10, generator=torch.Generator().manual_seed(0))
    kl = float(ns.DistillationLoss(2, "KL", "same", 0.5, 0.5)(logits, logits))
    expect(abs(kl) < 1e-5, f"KL of a student equal to its teacher (same temperatures): expected 0, got {kl:.6f}",
           "KL(p_t || p_s) = sum p_t (log p_t - log p_s)")
