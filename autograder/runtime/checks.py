"""Assertions for the graders whose messages a student can act on: what was expected, what was got, and a hint."""

from __future__ import annotations

import math

import torch


class CheckFailed(AssertionError):
    """A grader check failed; the message is written for the student."""


def fmt(value, digits: int = 5) -> str:
    """A short, readable rendering of a number, a list or a tensor."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        items = [fmt(v, digits) for v in value]
        if len(items) > 8:
            items = items[:6] + ["...", items[-1]]
        return "[" + ", ".join(items) + "]"
    return repr(value)


def fail(what: str, hint: str = "") -> None:
    raise CheckFailed(what + (f". {hint}" if hint else ""))


def expect(condition, what: str, hint: str = "") -> None:
    if not condition:
        fail(what, hint)


def expect_close(got, expected, what: str, hint: str = "", atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """``got`` must equal ``expected`` (numbers, lists or tensors) within the tolerances."""
    try:
        got_t = torch.as_tensor(got.detach() if isinstance(got, torch.Tensor) else got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        fail(f"{what}: expected {fmt(expected)}, got {got!r}", hint)
    exp_t = torch.as_tensor(expected, dtype=torch.float64)
    if got_t.numel() != exp_t.numel():
        fail(f"{what}: expected {exp_t.numel()} value(s) (shape {tuple(exp_t.shape)}), got shape {tuple(got_t.shape)}",
             hint)
    got_t = got_t.reshape(exp_t.shape)
    if not torch.allclose(got_t, exp_t, atol=atol, rtol=rtol, equal_nan=False):
        fail(f"{what}: expected {fmt(exp_t)}, got {fmt(got_t)}", hint)
