"""Example submissions of Assignment 1: correct, partial, hostile and broken notebooks, with the status and the
honest points each must get (checked through every grading path by the course's tests)."""

from autograder.assignment.course import cells_by_grade_id, source_of
from autograder.proof.submissions import (
    GRADEBOOK_WRITE,
    MONKEYPATCH,
    NETWORK,
    PROTECTED_READ,
    RETRY_ALLOCATIONS,
    WRITE_OUTSIDE,
    Example,
    correct,
    duplicated_test,
    edit,
    edited_tests,
    empty_notebook,
    foreign_cells,
    in_body,
    old_metadata_schema,
    other_assignment,
    raw,
    stubs,
    with_code,
    without_cells,
)

UNITS = frozenset({"dino_head", "dino_loss", "local_global_dataset", "schedules", "dino_trainer", "pseudo_labels"})


def _partial(assignment):
    nb = edit(correct(assignment), "dino_loss", replace=("(teacher_output - self.center) / teacher_temp",
                                                         "teacher_output / teacher_temp"))
    cells_by_grade_id(nb)["dino_trainer"]["source"] = source_of(cells_by_grade_id(stubs(assignment))["dino_trainer"])
    return nb


EXAMPLES = {
    "correct": Example(correct, "ok", UNITS, "every part solved"),
    "partial": Example(_partial, "ok", UNITS - {"dino_loss", "dino_trainer"},
                       "no centering in the loss, trainer left as the stub"),
    "untouched": Example(stubs, "ok", frozenset(), "the released notebook, nothing written"),
    "infinite-loop": Example(with_code("dino_loss", after="\nwhile True:\n    pass\n"), "timeout",
                             UNITS - {"dino_loss"}, "an endless loop in the loss cell", hostile=True),
    "os-exit": Example(with_code("dino_head", after="\nimport os\nos._exit(3)\n"), "crashed",
                       UNITS - {"dino_head"}, "os._exit in the head cell", hostile=True),
    "kernel-kill": Example(with_code("schedules", after="\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"),
                           "crashed", UNITS - {"schedules"}, "the process kills itself (SIGKILL)", hostile=True),
    "memory-bomb": Example(with_code("pseudo_labels", after="\nhog = [bytearray(256 << 20) for _ in range(256)]\n"),
                           "memory", UNITS - {"pseudo_labels"}, "allocates 64 GB in the pseudo-label cell",
                           hostile=True),
    "memory-in-unit": Example(in_body("dino_loss", "def forward(self, student_output", RETRY_ALLOCATIONS), "memory",
                              UNITS - {"dino_loss"}, "the loss allocates without end, retrying what fails",
                              hostile=True),
    "fork-bomb": Example(with_code("schedules", after="\nimport os\nwhile True:\n    os.fork()\n"), "crashed",
                         UNITS - {"schedules"}, "forks without end in the schedules cell", hostile=True),
    "network": Example(with_code("dino_head", before=NETWORK), "ok", UNITS, "downloads something (blocked)",
                       hostile=True),
    "write-outside": Example(with_code("dino_loss", before=WRITE_OUTSIDE), "ok", UNITS,
                             "writes into the course folder (blocked)", hostile=True),
    "read-solutions": Example(with_code("dino_loss", before=PROTECTED_READ), "tampered", UNITS - {"dino_loss"},
                              "reads the solution notebook and the reference values", hostile=True),
    "gradebook-write": Example(with_code("dino_head", before=GRADEBOOK_WRITE), "tampered", UNITS - {"dino_head"},
                               "writes scores into the gradebook", hostile=True),
    "monkeypatch": Example(with_code("dino_loss", before=MONKEYPATCH, base=stubs), "tampered", frozenset(),
                           "patches the graders, torch.allclose and autograder.check (loss left as the stub)",
                           hostile=True),
    "fake-prints": Example(with_code("dino_head", after="\nprint('test_dino_head_hidden: 2 / 2 points, all checks "
                                     "passed')\n", base=stubs), "ok", frozenset(), "prints fake results"),
    "huge-output": Example(with_code("dino_head", after="\nfor _ in range(200):\n    print('x' * 1_000_000)\n"), "ok",
                           UNITS, "prints 200 MB", hostile=True),
    "stderr-noise": Example(with_code("dino_loss", before="import sys, warnings\nprint('noise', file=sys.stderr)\n"
                                      "warnings.warn('noise')\n"), "ok", UNITS, "writes to stderr"),
    "duplicated-cells": Example(duplicated_test("test_dino_loss_hidden"), "tampered", UNITS,
                                "a copied hidden test cell"),
    "deleted-cells": Example(without_cells("test_dino_loss_visible", "schedules"), "tampered", UNITS - {"schedules"},
                             "deleted a visible test cell and the schedules cell"),
    "edited-tests": Example(edited_tests, "tampered", frozenset(), "test cells replaced by prints, worth 100 points "
                            "each"),
    "old-metadata": Example(old_metadata_schema, "ok", UNITS, "solution cells with nbgrader metadata of schema "
                            "version 1"),
    "foreign-cells": Example(foreign_cells, "tampered", UNITS, "cells pasted from other notebooks, with nbgrader "
                             "metadata nbgrader refuses"),
    "not-a-notebook": Example(raw(b"import torch\nprint('my solution')\n"), "invalid-notebook", frozenset(),
                              "a Python script named dino.ipynb"),
    "empty-notebook": Example(empty_notebook, "invalid-notebook", frozenset(), "a notebook with no cells"),
    "other-assignment": Example(other_assignment, "invalid-notebook", frozenset(), "a notebook of another assignment"),
    "non-utf8": Example(raw(b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "x": "\xff\xfe"}'),
                        "invalid-notebook", frozenset(), "bytes that are not UTF-8"),
}
DEMO = ("correct", "partial", "untouched", "infinite-loop", "monkeypatch", "not-a-notebook")
