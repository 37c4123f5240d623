"""Generate the student notebooks from the instructor's with nbgrader, or check that the committed ones are current.

    python -m autograder release [ASSIGNMENT ...]           # writes assignments/<id>/<name>.ipynb (make release)
    python -m autograder release --check [ASSIGNMENT ...]   # exit 1 if a committed release differs from a fresh one

This runs ``nbgrader generate_assignment`` with the course's configuration
(:mod:`autograder.commands.nbgrader_hooks`) in a scratch course directory (so no gradebook or stray files of the
instructor's folder end up in the release) and copies the notebook to ``assignments/``. Every assignment of
``solutions/`` by default.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment
from autograder.commands import checked, every_assignment, venv_env


def generate(assignment: Assignment, course_root: Path) -> Path:
    """Generate the assignment into ``course_root/assignments`` (a scratch course directory); the notebook's path."""
    target = Path(course_root) / "solutions" / assignment.id / assignment.notebook
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(assignment.solution_path, target)
    nbgrader = Path(sys.executable).with_name("nbgrader")
    cmd = [str(nbgrader) if nbgrader.exists() else "nbgrader", "generate_assignment", assignment.id, "--force",
           f"--CourseDirectory.root={course_root}", f"--CourseDirectory.db_url=sqlite:///{course_root}/gb.db"]
    done = subprocess.run(cmd, cwd=COURSE_ROOT, capture_output=True, text=True, env=venv_env())
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {assignment.id} failed:\n{done.stdout}{done.stderr}")
    return Path(course_root) / "assignments" / assignment.id / assignment.notebook


def regenerate(ids: list[str], check: bool = False, root: Path = COURSE_ROOT) -> int:
    from autograder.assignment.course import assignment_ids

    stale = []
    for aid in ids or assignment_ids(root):
        assignment = Assignment.load(aid, root)
        with tempfile.TemporaryDirectory(prefix="release-") as tmp:
            fresh = generate(assignment, Path(tmp))
            committed = assignment.release_path
            if check:
                if not committed.is_file() or committed.read_bytes() != fresh.read_bytes():
                    stale.append(str(committed.relative_to(root)))
            else:
                committed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(fresh, committed)
                print(f"wrote {committed.relative_to(root)}")
    return checked(check, stale, "make release", "assignments/ is up to date")


def main(argv: list[str] | None = None) -> int:
    return every_assignment("release", argv, regenerate, __doc__)
