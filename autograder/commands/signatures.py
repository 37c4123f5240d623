"""Derive each assignment's bug signatures from its planted bugs, or check that the committed ones are current.

    python -m autograder signatures [ASSIGNMENT ...]           # write autograder/graders/<id>/bug_signatures.json
    python -m autograder signatures --check [ASSIGNMENT ...]   # exit 1 if a file differs from what grading gives

Every planted bug of the assignment's ``mutants.py`` is graded by the engine as a submission (two at a time: a few
minutes per assignment, also with --check); the checks each one fails in its unit are its signature
(:mod:`autograder.grading.diagnosis`), by which feedback names the likely bug of a student's unit. It prints which
bugs get a name of their own, which share a signature (their feedback names all of them) and which fail no check at
all (nothing can name them).
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment, assignment_ids
from autograder.commands import checked, every_assignment
from autograder.grading import diagnosis
from autograder.grading.engine import Engine, Settings
from autograder.grading.verdict import Verdict
from autograder.proof.submissions import from_solution, mutants
from autograder.sandbox.isolation import Limits

WORKERS = 2


def grade_planted(assignment: Assignment) -> dict[str, Verdict]:
    """The verdict of every planted bug of the assignment, keyed by its name."""
    planted = mutants(assignment).MUTANTS
    notebooks = {name: json.dumps(from_solution(assignment, case[1:])).encode() for name, case in planted.items()}
    engine = Engine(assignment, Settings(Limits(), workers=WORKERS))
    for warning in engine.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = {name: pool.submit(engine.grade, raw, assignment.notebook) for name, raw in notebooks.items()}
            return {name: future.result() for name, future in futures.items()}
    finally:
        engine.close()


def summary(assignment: Assignment, data: dict) -> list[str]:
    """What the signatures can name: bugs with a signature of their own, bugs sharing one, bugs caught by no check."""
    shared = [bugs for signatures in diagnosis.catalog(data, assignment.units).values()
              for bugs in signatures.values() if len(bugs) > 1]
    named = sum(len(data[unit]) for unit in assignment.units) - sum(map(len, shared))
    missed = diagnosis.uncaught(assignment, data)
    return [f"{assignment.id}: {named} planted bugs named on their own, {sum(map(len, shared))} sharing a signature, "
            f"{len(missed)} failing no check",
            *(f"  sharing a signature (feedback names each): {' / '.join(bugs)}" for bugs in shared),
            *(f"  failing no check (never named): {name}" for name in missed)]


def regenerate(ids: list[str], check: bool = False, root: Path = COURSE_ROOT) -> int:
    stale = []
    for aid in ids or assignment_ids(root):
        assignment = Assignment.load(aid, root)
        data = diagnosis.derive(assignment, grade_planted(assignment))
        path = assignment.graders_dir / diagnosis.SIGNATURES
        print("\n".join(summary(assignment, data)))
        if check:
            if not path.is_file() or json.loads(path.read_text(encoding="utf-8")) != data:
                stale.append(str(path.relative_to(root)))
        else:
            path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"wrote {path.relative_to(root)}")
    return checked(check, stale, "python -m autograder signatures", "bug signatures are up to date")


def main(argv: list[str] | None = None) -> int:
    return every_assignment("signatures", argv, regenerate, __doc__)
