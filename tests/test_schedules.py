"""Part IV: cosine schedules and the four schedules of the assignment."""

from __future__ import annotations

import numpy as np
import pytest


def test_cosine_schedule_warms_up_linearly_then_decays_to_the_final_value(nb):
    s = nb.cosine_schedule(1.0, 0.2, total_steps=100, warmup_steps=10, start_warmup_value=0.5)
    assert len(s) == 100
    np.testing.assert_allclose(s[:10], np.linspace(0.5, 1.0, 10))
    assert s[10] == pytest.approx(1.0)
    assert np.all(np.diff(s[10:]) <= 0)
    assert s[-1] == pytest.approx(0.2, abs=1e-3)


def test_cosine_schedule_object_needs_init_and_clamps_after_the_end(nb):
    sched = nb.CosineSchedule(0.5, 0.1, 0.1, 0)
    with pytest.raises(ValueError):
        sched(0)
    sched.init(100)
    assert sched(0) == 0 and sched(9) == pytest.approx(0.5)
    assert sched(150) == sched(99)


TOTAL = 200  # warm-up: 20 steps


def init(schedule):
    schedule.init(TOTAL)
    return np.array([schedule(i) for i in range(TOTAL)])


def test_learning_rate_warms_up_from_zero_to_5e_4_then_decays_to_2e_4(nb):
    lr = init(nb.lr_schedule)
    assert lr[0] == 0
    assert lr[19] == pytest.approx(5e-4) and lr[20] == pytest.approx(5e-4)
    assert np.all(np.diff(lr[:20]) > 0) and np.all(np.diff(lr[20:]) <= 0)
    assert lr[-1] == pytest.approx(2e-4, abs=1e-6)


def test_weight_decay_rises_from_0_02_to_0_04_without_warmup(nb):
    wd = init(nb.wd_schedule)
    assert wd[0] == pytest.approx(0.02) and wd[-1] == pytest.approx(0.04, abs=1e-5)
    assert np.all(np.diff(wd) >= 0)


def test_teacher_temperature_warms_up_from_0_04_to_0_07_then_stays(nb):
    temp = init(nb.teacher_temp_schedule)
    assert temp[0] == pytest.approx(0.04) and temp[19] == pytest.approx(0.07)
    np.testing.assert_allclose(temp[20:], 0.07)


def test_teacher_momentum_rises_from_0_992_to_0_996(nb):
    mom = init(nb.ema_schedule)
    assert mom[0] == pytest.approx(0.992) and mom[-1] == pytest.approx(0.996, abs=1e-6)
    assert np.all(np.diff(mom) >= 0)
