"""python -m autograder COMMAND ... (see the package's docstring)."""

from __future__ import annotations

import importlib
import sys

# command -> (module whose main(argv) runs it, one line of usage)
COMMANDS = {
    "grade": ("autograder.commands.grade",
              "NOTEBOOK [NOTEBOOK ...] [--assignment ID] [--json OUT] [--timeout S] [--memory MB] [--no-sandbox]\n"
              "    grade notebooks with the engine; print a table per notebook, write JSON"),
    "autograde": ("autograder.commands.grade_class",
                  "ASSIGNMENT [--course DIR] [--workers N] [--timeout S] [--memory MB] [--force] [--student S]\n"
                  "    [--executor submitit --cluster slurm|local --partition P --per-job N]\n"
                  "    grade a class (here, or in jobs of a scheduler): nbgrader gradebook, feedback, grades.csv, "
                  "report"),
    "export": ("autograder.commands.export",
               "[--format canvas|moodle|csv] [--to FILE] [--course DIR] [--assignment ID ...]\n"
               "    the gradebook's totals (automatic + manual points) as a file an LMS imports"),
    "signatures": ("autograder.commands.signatures",
                   "[ASSIGNMENT ...] [--check]\n    derive each assignment's bug signatures from its planted bugs"),
    "release": ("autograder.commands.release",
                "[ASSIGNMENT ...] [--check]\n    regenerate assignments/ from solutions/ (nbgrader), or check them"),
    "reference": ("autograder.commands.reference_values",
                  "[ASSIGNMENT ...] [--check]\n    regenerate each assignment's reference values (or check them)"),
    "kit": ("autograder.commands.kit",
            "ASSIGNMENT [--out DIR]\n    the student download: released notebook, data sample, runtime package"),
    "demo": ("autograder.commands.demo",
             "[--env NAME=VALUE ...]\n    the main job: every solution notebook end to end, then autograde examples"),
    "examples": ("autograder.proof.submissions",
                 "ASSIGNMENT DIR [NAME ...]\n    write example submissions into an nbgrader course folder"),
    "benchmark": ("autograder.proof.benchmark",
                  "[ASSIGNMENT]\n    seconds to grade one submission from a cold start (median of 5)"),
    "benchmark-class": ("autograder.proof.classbench",
                        "[ASSIGNMENT]\n    seconds per submission of a generated class with 1 and 2 workers"),
}

USAGE = "usage: python -m autograder COMMAND ...\n\ncommands:\n" + "\n".join(
    f"  {name} {usage}" for name, (_, usage) in COMMANDS.items()) + """

Every command but the benchmarks takes --root DIR: the course (solutions/, assignments/, autograder/graders/;
default: this one).
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    from autograder.assignment.course import CourseError

    try:
        return importlib.import_module(COMMANDS[command][0]).main(rest)
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
