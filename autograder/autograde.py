"""Grade a whole class: ``python -m autograder autograde ASSIGNMENT``.

Run from an nbgrader course directory (or pass ``--course DIR``) that holds
``submitted/<student>/<assignment>/<notebook>.ipynb``. Every submission is graded by the engine
(:mod:`autograder.engine`: inspected without running, each unit in its own sandboxed process), ``--workers`` at
once, each with ``--timeout`` seconds and ``--memory`` MB per graded unit. Then, for every student,

* nbgrader's own ``autograde`` records the points per test cell in nbgrader's gradebook (its ``Execute`` step is
  replaced by writing the engine's verdicts, see :mod:`autograder.nbgrader_hooks`), so ``nbgrader formgrader`` and
  ``nbgrader export`` work as usual and the written answers are graded by hand there;
* ``feedback/<student>/<assignment>/<notebook>.html`` gets the points per part and every failed check's message
  (never the source of a hidden test);
* ``autograded/<student>/<assignment>/<notebook>-autograde.json`` keeps the verdict, written last: a rerun grades
  only new or changed submissions, or everything after a change to anything that can change a grade (``--force``
  regrades); stopping midway loses no finished grade.

At the end ``reports/<assignment>/grades.csv`` and ``report.html`` (score distribution, points per part, the
checks failed most often, every submission whose status is not ``ok``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from autograder.course import COURSE_ROOT, Assignment, CourseError
from autograder.sandbox import Limits


@dataclass
class Course:
    """An nbgrader course directory, for one assignment."""

    root: Path
    assignment: Assignment
    db_url: str

    @property
    def stem(self) -> str:
        return Path(self.assignment.notebook).stem

    def submitted(self) -> Path:
        return self.root / "submitted"

    def students(self) -> list[str]:
        found = {p.name for p in self.submitted().iterdir() if p.is_dir()} if self.submitted().is_dir() else set()
        return sorted(found | set(self._gradebook_students()))

    def submission(self, student: str) -> Path:
        return self.submitted() / student / self.assignment.id / self.assignment.notebook

    def autograded(self, student: str) -> Path:
        return self.root / "autograded" / student / self.assignment.id

    def result_file(self, student: str) -> Path:
        return self.autograded(student) / f"{self.stem}-autograde.json"

    def feedback(self, student: str) -> Path:
        return self.root / "feedback" / student / self.assignment.id / f"{self.stem}.html"

    def reports(self) -> Path:
        return self.root / "reports" / self.assignment.id

    @property
    def sqlite_file(self) -> Path | None:
        """The gradebook's file when it is an SQLite database."""
        return Path(self.db_url[len("sqlite:///"):]) if self.db_url.startswith("sqlite:///") else None

    def private_paths(self) -> list[Path]:
        """What a submission must not read or write: everything of the course but the released notebooks."""
        paths = [self.root / name for name in ("submitted", "autograded", "feedback", "reports", "gradebook.db",
                                               "source", "solutions", ".git")]
        if self.sqlite_file:
            paths.append(self.sqlite_file)
        return list(dict.fromkeys(path.resolve() for path in paths))

    def _gradebook_students(self) -> list[str]:
        from nbgrader.api import Gradebook

        if self.sqlite_file and not self.sqlite_file.exists():
            return []
        with Gradebook(self.db_url) as gb:
            return [s.id for s in gb.students]

    def previous(self, student: str) -> dict | None:
        try:
            return json.loads(self.result_file(student).read_text())
        except (OSError, ValueError):
            return None

    def needs_grading(self, student: str) -> bool:
        previous = self.previous(student)
        path = self.submission(student)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        return not (previous and previous.get("grader") == self.assignment.fingerprint
                    and previous.get("sha256") == digest)


def grade_student(engine, course: Course, student: str) -> tuple[dict, bytes | None]:
    path = course.submission(student)
    raw = path.read_bytes() if path.is_file() else None
    verdict = engine.grade(raw, path.name)
    return {"student": student, "notebook": str(path), **verdict}, raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder autograde", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", help="the assignment to grade (its folder name in solutions/)")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="the nbgrader course directory (default: .)")
    parser.add_argument("--root", type=Path, default=None,
                        help="the course's folder with solutions/ and autograder/graders/ (default: --course if it "
                             "has the assignment's solution, else this course)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="submissions graded at once (default: the number of cores)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for one submission (default: 300)")
    parser.add_argument("--memory", type=int, default=4096, help="MB of memory for one graded unit (default: 4096)")
    parser.add_argument("--force", action="store_true", help="regrade submissions that were graded already")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--db-url", help="the gradebook (default: sqlite:///COURSE/gradebook.db)")
    parser.add_argument("--no-sandbox", action="store_true", help="do not use bubblewrap (resource limits only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no class table")
    args = parser.parse_args(argv)
    from autograder.engine import Engine, Settings
    from autograder.nbgrader_hooks import Recorder
    from autograder.report import print_table, write_course_index, write_feedback, write_reports

    root = args.course.resolve()
    course_root = args.root or (root if (root / "solutions" / args.assignment).is_dir() else COURSE_ROOT)
    try:
        assignment = Assignment.load(args.assignment, course_root.resolve())
        course = Course(root, assignment, args.db_url or f"sqlite:///{root / 'gradebook.db'}")
        students = args.student or course.students()
        if not students:
            raise CourseError(f"no submissions: expected {course.submitted()}/<student>/{assignment.id}/"
                              f"{assignment.notebook}")
        todo = [s for s in students if args.force or course.needs_grading(s)]
        workers = max(1, min(args.workers, len(todo) or 1))
        settings = Settings(Limits(timeout=args.timeout, memory_mb=args.memory), workers=workers,
                            sandbox=not args.no_sandbox)
        engine = Engine(assignment, settings, hide=course.private_paths())
    except CourseError as err:
        print(f"cannot autograde {args.assignment}: {err}", file=sys.stderr)
        return 2
    for warning in engine.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if not args.quiet:
        print(f"{assignment.id}: {len(students)} students, {len(todo)} to grade, {len(students) - len(todo)} "
              f"already graded; {workers} worker(s); isolation: {engine.sandbox.isolation.describe()}")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # alembic
    start = time.monotonic()
    from tqdm import tqdm

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool, tempfile.TemporaryDirectory(prefix="stage-") as stage:
            recorder = None
            futures = [pool.submit(grade_student, engine, course, s) for s in todo]
            bar = tqdm(total=len(todo), desc=f"autograde {assignment.id}", unit="nb", disable=args.quiet or None)
            for future in as_completed(futures):
                result, raw = future.result()
                with warnings.catch_warnings():  # nbgrader's SQLAlchemy warns about its own session use
                    warnings.simplefilter("ignore")
                    recorder = recorder or Recorder(course, assignment, Path(stage))
                    recorder.record(result, raw)
                write_feedback(course.feedback(result["student"]), result)
                target = course.result_file(result["student"])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
                target.with_suffix(".tmp").replace(target)  # written last: its presence means "graded and recorded"
                bar.set_postfix_str(f"{result['student']}: {result['status']}")
                bar.update()
            bar.close()
    finally:
        engine.close()
    elapsed = time.monotonic() - start
    results = [course.previous(s) or {"student": s, "status": "missing"} for s in students]
    paths = write_reports(course.reports(), results, assignment)
    paths.append(write_course_index(course.reports().parent))
    if not args.quiet:
        print_table(results, assignment)
        if todo:
            print(f"graded {len(todo)} submission(s) in {elapsed:.1f} s ({elapsed / len(todo):.1f} s per submission "
                  f"with {workers} worker(s))")
        print("wrote " + ", ".join(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths))
    return 0
