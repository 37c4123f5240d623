"""python -m autograder {grade,autograde,reference,release} ... (see the package's docstring)."""

from __future__ import annotations

import sys

USAGE = """usage: python -m autograder COMMAND ...

commands:
  grade NOTEBOOK [--json OUT]   grade one notebook as nbgrader autograde would; print a table, write JSON
  autograde ASSIGNMENT [--course DIR] [--workers N] [--timeout S] [--memory MB] [--force]
                                grade a whole class in the sandbox: gradebook, feedback, grades.csv, report
  reference [--check]           regenerate autograder/reference_values.json from the solution (or check it)
  release [--check]             regenerate assignments/01_dino/dino.ipynb from solutions/ (or check it)
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "grade":
        from autograder.grade import main as grade

        return grade(rest)
    if command == "autograde":
        from autograder.autograde import main as autograde

        return autograde(rest)
    if command in ("reference", "release"):
        import argparse

        parser = argparse.ArgumentParser(prog=f"python -m autograder {command}")
        parser.add_argument("--check", action="store_true", help="only check that the committed file is up to date")
        args = parser.parse_args(rest)
        if command == "reference":
            from autograder.reference import main as reference

            return reference(check=args.check)
        from autograder.release import main as release

        return release(check=args.check)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
