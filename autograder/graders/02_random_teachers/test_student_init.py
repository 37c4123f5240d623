"""Part II: the student initialization (four modes, variance preservation, buffers, a new trainable network)."""

from __future__ import annotations

import pytest
import torch

from autograder.runtime.checks import expect, expect_close

from .cases import INIT_CASES, init_pair, student_weights

HINTS = {
    "teacher": "mode 'teacher': the student is an exact copy of the teacher",
    "random": "mode 'random': every parameter is the random network's",
    "interpolated": "mode 'interpolated': (1 - alpha) * teacher + alpha * random, divided by "
                    "sqrt((1 - alpha)**2 + alpha**2) when var_preserving",
    "neighborhood": "mode 'neighborhood': teacher + eps * random",
}


@pytest.mark.parametrize("case", INIT_CASES)
def test_weights_equal_the_reference(ns, values, case):
    """Every parameter and buffer of the student equals the reference's"""
    got = student_weights(ns, case)
    expected = values[case]
    expect(set(got) == set(expected), f"{case}: the student's state_dict has {sorted(got)}, expected "
           f"{sorted(expected)}")
    for name, want in expected.items():
        what = "buffer" if "running" in name or "num_batches" in name else "parameter"
        hint = ("Buffers (BatchNorm's running statistics) are the teacher's in every mode" if what == "buffer"
                else HINTS[INIT_CASES[case][0]])
        expect_close(got[name], want, f"{case}: the student's {what} {name}", hint, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["teacher", "random", "interpolated", "neighborhood"])
def test_student_is_a_new_trainable_network_in_training_mode(ns, mode):
    """The student is trainable, in training mode, shares no tensor with its sources and changes neither"""
    teacher, other = init_pair()
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (teacher, other)]
    student = ns.init_student(teacher, other, mode, alpha=0.4, eps=0.01)
    frozen = [n for n, p in student.named_parameters() if not p.requires_grad]
    expect(not frozen, f"mode {mode!r}: these parameters of the student do not require a gradient: {frozen}",
           "The teacher's parameters are frozen; a copy of them is too until you switch requires_grad back on")
    expect(student.training and all(m.training for m in student.modules()),
           f"mode {mode!r}: the student (or one of its layers) is in evaluation mode",
           "The teacher is in eval mode, so its copy is too: call student.train()")
    shared = {p.data_ptr() for p in student.parameters()} & {p.data_ptr() for m in (teacher, other)
                                                             for p in m.parameters()}
    expect(not shared, f"mode {mode!r}: the student shares parameter tensors with the teacher or the random network",
           "Copy the values into the student's own tensors (the student is a deepcopy of the teacher)")
    for model, state, name in zip((teacher, other), before, ("teacher", "random network"), strict=True):
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, state[k])]
        expect(not changed, f"mode {mode!r}: init_student changed the {name}'s {changed}")


def test_unknown_mode_is_an_error(ns):
    """An unknown mode raises ValueError"""
    teacher, other = init_pair()
    try:
        ns.init_student(teacher, other, "copy")
    except ValueError:
        return
    expect(False, "init_student(..., mode='copy') did not raise ValueError", "Keep the given check of the mode")
