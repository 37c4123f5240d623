"""Part IV: the four schedules (every step of two run lengths, against the reference)."""

from __future__ import annotations

import pytest

from autograder.runtime.checks import expect, fail

from .cases import SCHEDULE_TOTALS, SCHEDULES

WHAT = {"lr_schedule": "the learning rate: cosine from 5e-4 to 2e-4 after a linear warm-up from 0 over 10 % "
                       "of the steps",
        "wd_schedule": "the weight decay: cosine from 0.02 to 0.04, no warm-up",
        "teacher_temp_schedule": "the teacher temperature: linear warm-up from 0.04 to 0.07 over 10 % of the "
                                 "steps, then constant",
        "ema_schedule": "the teacher momentum: cosine from 0.992 to 0.996, no warm-up"}


@pytest.mark.parametrize("total", SCHEDULE_TOTALS)
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_the_reference_at_every_step(ns, values, name, total):
    """Each schedule gives the reference's value at every step of a run"""
    schedule = getattr(ns, name)
    expect(callable(getattr(schedule, "init", None)) and callable(schedule),
           f"{name} is a {type(schedule).__name__}, not a CosineSchedule", "Create it with CosineSchedule(...)")
    schedule.init(total)
    for step, expected in enumerate(values[str(total)][name]):
        got = float(schedule(step))
        if abs(got - expected) > 1e-9 + 1e-6 * abs(expected):
            fail(f"{name} at step {step} of {total}: expected {expected:.6g}, got {got:.6g}", f"It is {WHAT[name]}")
