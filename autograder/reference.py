"""Generate ``reference_values.json`` from the solution notebook, or check that it is up to date.

    python -m autograder reference           # write autograder/reference_values.json
    python -m autograder reference --check   # exit 1 if the file differs from what the solution gives now
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from autograder.cases import VALUES_FILE, generate, load_values, write_values
from autograder.units import Namespace, reference


def compute() -> dict:
    import torch

    ref = reference()
    ns = Namespace(ref.module.__dict__, "reference", "the solution")
    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=[]):
        return generate(ns, Path(tmp))


def differences(new, old, path="", rel=1e-6, abs_=1e-9) -> list[str]:
    """Where two value trees differ (numbers within a relative tolerance count as equal)."""
    if isinstance(new, dict) and isinstance(old, dict):
        out = [f"{path}/{k}: only in one of the two" for k in set(new) ^ set(old)]
        for key in sorted(set(new) & set(old)):
            if key != "torch":
                out += differences(new[key], old[key], f"{path}/{key}", rel, abs_)
        return out
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            return [f"{path}: {len(old)} values, now {len(new)}"]
        pairs = enumerate(zip(new, old, strict=True))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{path}[{i}]", rel, abs_)]
    if isinstance(new, (int, float)) and isinstance(old, (int, float)):
        return [] if math.isclose(new, old, rel_tol=rel, abs_tol=abs_) else [f"{path}: {old} in the file, now {new}"]
    return [] if new == old else [f"{path}: {old!r} in the file, now {new!r}"]


def main(check: bool = False, out: Path = VALUES_FILE) -> int:
    values = compute()
    if check:
        try:
            diff = differences(values, load_values())
        except FileNotFoundError as err:
            print(err)
            return 1
        if diff:
            print(f"{VALUES_FILE.name} is out of date ({len(diff)} differences, e.g. {diff[:3]}); "
                  "run `make reference`")
            return 1
        print(f"{VALUES_FILE.name} is up to date")
        return 0
    print(f"wrote {write_values(values, out)}")
    return 0
