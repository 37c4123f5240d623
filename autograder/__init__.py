"""The autograder of the DINO course: graders, reference values, and the commands that use them.

    python -m autograder grade NOTEBOOK [--json OUT]   grade one notebook as nbgrader autograde would
    python -m autograder reference [--check]           regenerate reference_values.json from the solution
    python -m autograder release [--check]             regenerate assignments/ from solutions/ with nbgrader

Inside a notebook, a hidden test cell calls :func:`check` with the unit it grades.
"""

import inspect


def check(unit: str, names: dict | None = None) -> None:
    """Run the graders of ``unit`` against the calling notebook's definitions (see :mod:`autograder.runner`)."""
    from autograder.runner import check as run_check  # imports torch and pytest: only when grading

    run_check(unit, names if names is not None else inspect.currentframe().f_back.f_globals)


__all__ = ["check"]
