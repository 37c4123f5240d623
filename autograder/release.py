"""Generate the student notebook from the instructor's with nbgrader, or check that the committed one is current.

    python -m autograder release           # writes assignments/01_dino/dino.ipynb  (make release)
    python -m autograder release --check   # exit 1 if the committed release differs from a fresh one

This runs ``nbgrader generate_assignment`` with the course's ``nbgrader_config.py`` in a scratch course directory
(so no gradebook or stray files of the instructor's folder end up in the release) and copies the result to
``assignments/``. The config adds one step to nbgrader's: :class:`NameStubs` turns every code stub into a
``NotImplementedError`` that names what to implement.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearSolutions, NbGraderPreprocessor

from dinocourse import REPO_ROOT

ASSIGNMENTS = {"01_dino": ["dino.ipynb"]}
STUB = "raise NotImplementedError()"  # ClearSolutions.code_stub in nbgrader_config.py
DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?P<kind>def|class)\s+(?P<name>\w+)")


def stub_message(lines: list[str], index: int, fallback: str) -> str:
    """What the stub at ``lines[index]`` stands for, e.g. 'DINOLoss.forward' (enclosing class and function)."""
    indent = len(lines[index]) - len(lines[index].lstrip())
    names = []
    for line in reversed(lines[:index]):
        match = DEF.match(line)
        if match and len(match["indent"]) < indent:
            names.insert(0, match["name"])
            indent = len(match["indent"])
    return ".".join(names) or fallback


class NameStubs(NbGraderPreprocessor):
    """Replace nbgrader's generic code stub by one whose message names the class, method or cell to implement."""

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            lines = cell.source.split("\n")
            for i, line in enumerate(lines):
                if line.strip() == STUB:
                    what = stub_message(lines, i, f"the cell `{meta.get('grade_id', '')}`")
                    lines[i] = line.replace(STUB, f'raise NotImplementedError("{what} is not implemented yet: '
                                                  'write your code between START CODE HERE and END CODE HERE")')
            cell.source = "\n".join(lines)
        return cell, resources


def preprocessors() -> list:
    """nbgrader's generate_assignment steps with :class:`NameStubs` right after ClearSolutions."""
    steps = list(GenerateAssignment.class_traits()["preprocessors"].default())
    steps.insert(steps.index(ClearSolutions) + 1, NameStubs)
    return steps


def venv_env() -> dict[str, str]:
    """The environment with this Python's bin folder first on PATH (nbgrader runs `alembic` from PATH)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def generate(course_root: Path) -> dict[str, Path]:
    """Generate every assignment into ``course_root/assignments`` (a scratch course directory)."""
    course_root = Path(course_root)
    out = {}
    for assignment, notebooks in ASSIGNMENTS.items():
        for name in notebooks:
            target = course_root / "solutions" / assignment / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO_ROOT / "solutions" / assignment / name, target)
        nbgrader = Path(sys.executable).with_name("nbgrader")
        cmd = [str(nbgrader) if nbgrader.exists() else "nbgrader", "generate_assignment", assignment, "--force",
               f"--CourseDirectory.root={course_root}", f"--CourseDirectory.db_url=sqlite:///{course_root}/gb.db"]
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=venv_env())
        if done.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{done.stdout}{done.stderr}")
        for name in notebooks:
            out[f"{assignment}/{name}"] = course_root / "assignments" / assignment / name
    return out


def main(check: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="dino-release-") as tmp:
        fresh = generate(Path(tmp))
        stale = []
        for rel, path in fresh.items():
            committed = REPO_ROOT / "assignments" / rel
            if check:
                if not committed.is_file() or committed.read_bytes() != path.read_bytes():
                    stale.append(rel)
            else:
                committed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, committed)
                print(f"wrote assignments/{rel}")
    if check:
        if stale:
            print(f"out of date: {', '.join('assignments/' + s for s in stale)}; run `make release`")
            return 1
        print("assignments/ is up to date")
    return 0
