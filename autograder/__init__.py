"""The autograder of the course: one grading engine, the commands that use it, and each assignment's graders.

    python -m autograder grade NOTEBOOK ...            grade notebooks (the engine, sandboxed), print a table, JSON
    python -m autograder autograde ASSIGNMENT          grade a class: gradebook, feedback, grades.csv, report
    python -m autograder export --format canvas        the gradebook's totals as a file Canvas/Moodle imports
    python -m autograder signatures [ASSIGNMENT ...]   derive the bug signatures feedback names from planted bugs
    python -m autograder release [ASSIGNMENT ...]      regenerate assignments/ from solutions/ with nbgrader
    python -m autograder reference [ASSIGNMENT ...]    regenerate each assignment's reference values
    python -m autograder kit ASSIGNMENT                the student download: notebook, data sample, runtime package

Plain ``nbgrader autograde`` with the course's ``nbgrader_config.py`` runs the same engine. Inside an instructor's
notebook, a hidden test cell calls :func:`check`, which shows the unit's checks as feedback (it never decides a
grade: the engine does, and it never runs test cells).
"""

import inspect
import sys
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parents[1]  # solutions/, assignments/, autograder/, data/

# jsonschema (which nbformat imports) compiles a grammar for one URL format at import, 1.7 s of every start of a
# grading command; nbformat's schema never uses that format, so it is left out of our processes.
sys.modules.setdefault("rfc3987_syntax", None)


def check(unit: str, names: dict | None = None, assignment: str | None = None) -> None:
    """Run the graders of ``unit`` against the calling notebook's definitions and print the report (feedback)."""
    from autograder.runtime.notebook_check import check as run_check  # imports torch and pytest: only when asked

    run_check(unit, names if names is not None else inspect.currentframe().f_back.f_globals, assignment)


__all__ = ["check"]
