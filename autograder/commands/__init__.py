"""The commands of ``python -m autograder`` (see :mod:`autograder.__main__`), the nbgrader glue and the reports."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def venv_env() -> dict[str, str]:
    """The environment with this Python's bin folder first on PATH (nbgrader runs `alembic` from PATH)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def every_assignment(command: str, argv: list[str] | None, action, description: str | None = None) -> int:
    """``python -m autograder COMMAND [ASSIGNMENT ...] [--check] [--root DIR]``: ``action(ids, check=, root=)``
    (``description``: the command's module docstring, shown by ``--help``)."""
    import argparse

    from autograder import COURSE_ROOT

    parser = argparse.ArgumentParser(prog=f"python -m autograder {command}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="assignment ids (default: every assignment)")
    parser.add_argument("--check", action="store_true",
                        help="only check that the committed files are up to date (they are made again to compare)")
    parser.add_argument("--root", type=Path, default=COURSE_ROOT, help="the course's folder")
    args = parser.parse_args(argv)
    return action(args.assignments, check=args.check, root=args.root.resolve())


def checked(check: bool, stale: list[str], fix: str, current: str) -> int:
    """How an ``every_assignment`` command ends: with ``--check``, exit 1 naming the ``stale`` files and the command
    that makes them again (``fix``), or say they are ``current``; without it, 0."""
    if not check:
        return 0
    if stale:
        print(f"out of date: {'; '.join(stale)}; run `{fix}`")
        return 1
    print(current)
    return 0


def positive(kind=float):
    """An argparse type: a number of ``kind`` above zero (else argparse says what was given and what is expected)."""
    import argparse

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def add_limit_arguments(parser) -> None:
    """``--timeout``, ``--memory`` and ``--cell-timeout`` (defaults: :class:`~autograder.sandbox.isolation.Limits`)."""
    from autograder.sandbox.isolation import Limits

    parser.add_argument("--timeout", type=positive(float), default=Limits.timeout,
                        help=f"seconds for one submission (default: {Limits.timeout:.0f})")
    parser.add_argument("--memory", type=positive(int), default=Limits.memory_mb,
                        help=f"MB of memory for one graded unit (default: {Limits.memory_mb})")
    parser.add_argument("--cell-timeout", type=positive(float), default=Limits.cell_seconds,
                        help=f"seconds one cell of a student's program may run (default: {Limits.cell_seconds:.0f}, "
                             "and at most a share of --timeout)")


def limits_of(args):
    """The :class:`~autograder.sandbox.isolation.Limits` that :func:`add_limit_arguments` asked for."""
    from autograder.sandbox.isolation import Limits

    return Limits(timeout=args.timeout, memory_mb=args.memory, cell_seconds=args.cell_timeout)
