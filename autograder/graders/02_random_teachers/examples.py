"""Example submissions of Assignment 2: correct, partial, hostile and broken notebooks, with the status and the
honest points each must get. The attacks on the grader itself are Assignment 1's (the engine is the same); these
check that this assignment's units are isolated from each other under them."""

from autograder.assignment.course import cells_by_grade_id, source_of
from autograder.proof.submissions import (
    PROTECTED_READ,
    RETRY_ALLOCATIONS,
    Example,
    correct,
    edit,
    foreign_cells,
    in_body,
    old_metadata_schema,
    other_assignment,
    raw,
    stubs,
    with_code,
)

UNITS = frozenset({"frozen_teacher", "student_init", "distillation_loss", "knn_probe", "linear_probe", "distill"})


def _partial(assignment):
    nb = edit(correct(assignment), "distillation_loss",
              replace=("teacher_output.detach() / self.teacher_temp", "teacher_output.detach()"))
    cells_by_grade_id(nb)["linear_probe"]["source"] = source_of(cells_by_grade_id(stubs(assignment))["linear_probe"])
    return nb


EXAMPLES = {
    "correct": Example(correct, "ok", UNITS, "every part solved"),
    "partial": Example(_partial, "ok", UNITS - {"distillation_loss", "linear_probe"},
                       "teacher temperature ignored in the loss, linear probe left as the stub"),
    "untouched": Example(stubs, "ok", frozenset(), "the released notebook, nothing written"),
    "infinite-loop": Example(with_code("knn_probe", after="\nwhile True:\n    pass\n"), "timeout",
                             UNITS - {"knn_probe"}, "an endless loop in the k-NN cell", hostile=True),
    "os-exit": Example(with_code("frozen_teacher", after="\nimport os\nos._exit(3)\n"), "crashed",
                       UNITS - {"frozen_teacher"}, "os._exit in the teacher cell", hostile=True),
    "memory-in-unit": Example(in_body("distillation_loss", "def forward(self, student_output", RETRY_ALLOCATIONS),
                              "memory", UNITS - {"distillation_loss"}, "the loss allocates without end, retrying what "
                              "fails", hostile=True),
    "read-solutions": Example(with_code("distill", before=PROTECTED_READ), "tampered", UNITS - {"distill"},
                              "reads the solution notebook and the reference values", hostile=True),
    "stderr-noise": Example(with_code("student_init", before="import sys, warnings\nprint('noise', file=sys.stderr)\n"
                                      "warnings.warn('noise')\n"), "ok", UNITS, "writes to stderr"),
    "old-metadata": Example(old_metadata_schema, "ok", UNITS, "solution cells with nbgrader metadata of schema "
                            "version 1"),
    "foreign-cells": Example(foreign_cells, "tampered", UNITS, "cells pasted from other notebooks, with nbgrader "
                             "metadata nbgrader refuses"),
    "not-a-notebook": Example(raw(b"import torch\nprint('my solution')\n"), "invalid-notebook", frozenset(),
                              "a Python script named random_teachers.ipynb"),
    "other-assignment": Example(other_assignment, "invalid-notebook", frozenset(), "a notebook of another assignment"),
}
DEMO = ("correct", "partial", "untouched", "infinite-loop", "not-a-notebook")
