"""python -m autograder COMMAND ... (see the package's docstring)."""

from __future__ import annotations

import sys

USAGE = """usage: python -m autograder COMMAND ...

commands:
  grade NOTEBOOK [NOTEBOOK ...] [--assignment ID] [--json OUT] [--timeout S] [--memory MB] [--no-sandbox]
                                grade notebooks with the engine; print a table per notebook, write JSON
  autograde ASSIGNMENT [--course DIR] [--workers N] [--timeout S] [--memory MB] [--force] [--student S]
                                grade a class: nbgrader gradebook, feedback, grades.csv, report
  release [ASSIGNMENT ...] [--check]     regenerate assignments/ from solutions/ with nbgrader (or check them)
  reference [ASSIGNMENT ...] [--check]   regenerate each assignment's reference values (or check them)
  kit ASSIGNMENT [--out DIR]    the student download: released notebook, data sample, runtime package (a zip)
  examples ASSIGNMENT DIR [NAME ...]     write example submissions into an nbgrader course folder

Every command takes --root DIR: the course (solutions/, assignments/, autograder/graders/; default: this one).
"""


def _listed(command: str, argv: list[str]):
    import argparse
    from pathlib import Path

    from autograder.course import COURSE_ROOT

    parser = argparse.ArgumentParser(prog=f"python -m autograder {command}")
    parser.add_argument("assignments", nargs="*", help="assignment ids (default: every assignment)")
    parser.add_argument("--check", action="store_true", help="only check that the committed files are up to date")
    parser.add_argument("--root", type=Path, default=COURSE_ROOT, help="the course's folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    from autograder.course import CourseError

    try:
        if command == "grade":
            from autograder.grade import main as run
        elif command == "autograde":
            from autograder.autograde import main as run
        elif command == "kit":
            from autograder.kit import main as run
        elif command == "examples":
            from autograder.examples import main as run
        elif command in ("reference", "release"):
            args = _listed(command, rest)
            if command == "reference":
                from autograder.reference import main as generate
            else:
                from autograder.release import main as generate
            return generate(args.assignments, check=args.check, root=args.root.resolve())
        else:
            print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
            return 2
        return run(rest)
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
