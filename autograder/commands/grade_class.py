"""Grade a whole class: ``python -m autograder autograde ASSIGNMENT``.

Run from an nbgrader course directory (or pass ``--course DIR``) that holds
``submitted/<student>/<assignment>/<notebook>.ipynb``. Every submission is graded by the engine
(:mod:`autograder.grading.engine`: inspected without running, each unit in its own sandboxed process), ``--workers`` at
once, each with ``--timeout`` seconds and ``--memory`` MB per graded unit: here, or with ``--executor submitit`` in
jobs of a scheduler (:mod:`autograder.commands.cluster`). Then, for every student, as its verdict arrives,

* nbgrader's own ``autograde`` records the points per test cell in nbgrader's gradebook (its ``Execute`` step is
  replaced by writing the engine's verdicts, see :mod:`autograder.commands.nbgrader_hooks`), so
  ``nbgrader formgrader`` and
  ``nbgrader export`` work as usual and the written answers are graded by hand there;
* ``feedback/<student>/<assignment>/<notebook>.html`` gets the points per part and every failed check's message
  (never the source of a hidden test);
* ``autograded/<student>/<assignment>/<notebook>-autograde.json`` keeps the verdict, written last: a rerun grades
  only new or changed submissions, or everything after a change to anything that can change a grade (``--force``
  regrades); stopping midway loses no finished grade.

A step of these that fails for one student stays with that student (:func:`finish`): the status becomes
``not-recorded`` with what failed and what to do, the points stay the verdict's, everyone else is graded and reported
as usual, a rerun repeats only the failed steps, and the command exits 1 naming the students that need a look.

At the end ``reports/<assignment>/grades.csv`` and ``report.html`` (score distribution, points per part, the
checks failed most often, every submission whose status is not ``ok``), and the course index ``reports/index.html``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment, CourseError, private_files
from autograder.commands import add_limit_arguments, limits_of, positive, venv_env
from autograder.commands.cluster import cluster_verdicts, default_per_job, executor, folder_of, share_fields
from autograder.commands.manual import hand_graded
from autograder.commands.report import explain, print_table, write_feedback
from autograder.grading.engine import Engine, Settings, not_graded
from autograder.grading.verdict import Status, Verdict


@dataclass
class ClassFolder:
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
        """What a submission must not read or write: everything of the course folder but the released notebooks."""
        return list(dict.fromkeys(path.resolve() for path in private_files(self.root, self.db_url)))

    def _gradebook_students(self) -> list[str]:
        from nbgrader.api import Gradebook

        if self.sqlite_file and not self.sqlite_file.exists():
            return []
        with Gradebook(self.db_url) as gb:
            return [s.id for s in gb.students]

    def previous(self, student: str) -> Verdict | None:
        """The verdict of the last run (its result file; None: there is none, or it cannot be read)."""
        try:
            data = json.loads(self.result_file(student).read_text())
            return Verdict.from_json(data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def needs_grading(self, student: str) -> bool:
        """Not graded yet, changed since, graded by another version of the grader, or not graded at all last time."""
        previous = self.previous(student)
        return not (previous and previous.status != Status.NOT_GRADED and self.unchanged(student, previous))

    def digest(self, student: str) -> str | None:
        """The sha256 of the student's submission ("" when there is none, None when it cannot be read)."""
        path = self.submission(student)
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        except OSError:
            return None

    def unchanged(self, student: str, previous: Verdict) -> bool:
        return previous.grader == self.assignment.fingerprint and previous.sha256 == self.digest(student)


def grade_student(engine, course: ClassFolder, student: str) -> tuple[Verdict, bytes | None]:
    path = course.submission(student)
    verdict, raw = engine.grade_file(path)
    verdict.student, verdict.notebook = student, str(path)
    return verdict, raw


class LazyRecorder:
    """nbgrader's recorder, made when the first verdict arrives (once: a failure to make it stays that failure)."""

    def __init__(self, course: ClassFolder, stage: Path):
        self.course, self.stage = course, stage
        self._recorder, self._error = None, None

    def record(self, result: Verdict, raw: bytes | None) -> list[str]:
        from autograder.commands.nbgrader_hooks import Recorder

        with warnings.catch_warnings():  # nbgrader's SQLAlchemy warns about its own session use
            warnings.simplefilter("ignore")
            if self._error is None and self._recorder is None:
                try:
                    self._recorder = Recorder(self.course, self.course.assignment, self.stage)
                except Exception as err:  # noqa: BLE001 - reported for every student it concerns
                    self._error = err
            if self._error is not None:
                raise self._error
            return self._recorder.record(result, raw)


def write_result(path: Path, result: Verdict) -> None:
    """A student's result file, written atomically and last: its presence means "graded and recorded"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(result.to_json(), indent=1))
    path.with_suffix(".tmp").replace(path)


def finish(course: ClassFolder, recorder, result: Verdict, raw: bytes | None) -> Verdict:
    """Everything after one student's verdict: nbgrader's gradebook, the feedback page, the result file. A step that
    fails stays with this student: the status becomes ``not-recorded``, saying what failed and what to do; the
    points stay the verdict's, and no other student is touched."""
    # a retry starts from the verdict
    result = replace(result, status=result.graded_status or result.status, graded_status=None, not_recorded=None)
    failures = []
    try:
        result.recording = recorder.record(result, raw)
    except Exception as err:  # noqa: BLE001 - whatever it is, it concerns this student only
        failures.append(f"recording it in nbgrader's gradebook failed ({_error(err)})")
    try:
        write_feedback(course.feedback(result.student), result)
    except Exception as err:  # noqa: BLE001
        failures.append(f"writing its feedback page failed ({_error(err)})")
    result = not_recorded(result, failures)
    try:
        write_result(course.result_file(result.student), result)
    except Exception as err:  # noqa: BLE001
        result = not_recorded(result, [f"writing its result file failed ({_error(err)})"])
    return result


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).strip() or 'no message'}"


def not_recorded(result: Verdict, failures: list[str]) -> Verdict:
    """The result with the steps that failed after grading (none: unchanged)."""
    if not failures:
        return result
    return replace(result, status=Status.NOT_RECORDED, graded_status=result.graded_status or result.status,
                   not_recorded=[*(result.not_recorded or []), *failures])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder autograde", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", help="the assignment to grade (its folder name in solutions/)")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="the nbgrader course directory (default: .)")
    parser.add_argument("--root", type=Path, default=None,
                        help="the course's folder with solutions/ and autograder/graders/ (default: --course if it "
                             "has the assignment's solution, else this course)")
    parser.add_argument("--workers", type=positive(int), default=None,
                        help="submissions graded at once (default: the number of cores); with --executor submitit: "
                             "in each job, which gets that many cores (default: 1)")
    add_limit_arguments(parser)
    parser.add_argument("--force", action="store_true", help="regrade submissions that were graded already")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--db-url", help="the gradebook (default: sqlite:///COURSE/gradebook.db)")
    parser.add_argument("--no-sandbox", action="store_true", help="do not use bubblewrap (resource limits only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no class table")
    cluster = parser.add_argument_group("grading across a cluster (autograder/README.md: A class across a cluster)")
    cluster.add_argument("--executor", choices=("local", "submitit"), default="local",
                         help="local: grade here (default); submitit: in jobs of a scheduler, recorded here")
    cluster.add_argument("--cluster", choices=("slurm", "local"), default=None,
                         help="submitit's executor: Slurm jobs (default) or local processes")
    cluster.add_argument("--per-job", type=positive(int), default=None,
                         help="submissions per job (default: Slurm 20; local: the class over this machine's cores)")
    cluster.add_argument("--partition", help="the Slurm partition")
    cluster.add_argument("--job-minutes", type=positive(float), default=None,
                         help="time limit of a job in minutes (default: its share's --timeout, plus 10)")
    cluster.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                         help="another #SBATCH option for every job, e.g. account=myproject (repeatable)")
    args = parser.parse_args(argv)
    given = [name for name, value in (("--cluster", args.cluster), ("--per-job", args.per_job),
                                      ("--partition", args.partition), ("--job-minutes", args.job_minutes),
                                      ("--slurm-option", args.slurm_option)) if value]
    if given and args.executor != "submitit":
        parser.error(f"{', '.join(given)} only apply with --executor submitit (this run would grade here); add "
                     "--executor submitit, or leave them out")
    args.cluster = args.cluster or "slurm"

    root = args.course.resolve()
    course_root = args.root or (root if (root / "solutions" / args.assignment).is_dir() else COURSE_ROOT)
    on_cluster = args.executor == "submitit"
    try:
        options = dict(option.split("=", 1) for option in args.slurm_option)
        if not all(options):
            raise ValueError
    except ValueError:
        parser.error(f"--slurm-option takes KEY=VALUE (an #SBATCH option without its dashes, e.g. account=my-course), "
                     f"got {' '.join(args.slurm_option)}")
    try:
        assignment = Assignment.load(args.assignment, course_root.resolve())
        course = ClassFolder(root, assignment, args.db_url or f"sqlite:///{root / 'gradebook.db'}")
        known = course.students()
        unknown = [s for s in args.student or [] if s not in known]
        if unknown:
            raise CourseError(f"no student {', '.join(map(repr, unknown))} in this class: expected a folder "
                              f"{course.submitted()}/<student> or a student of the gradebook ({len(known)} students"
                              + (f", e.g. {', '.join(known[:5])}" if known else "") + ")")
        students = args.student or known
        if not students:
            raise CourseError(f"no submissions: expected {course.submitted()}/<student>/{assignment.id}/"
                              f"{assignment.notebook}")
        todo = [s for s in students if args.force or course.needs_grading(s)]
        retry = [s for s in students if s not in todo and getattr(course.previous(s), "status", None)
                 == Status.NOT_RECORDED]
        limits = limits_of(args)
        if on_cluster:
            assignment.grader_check()
            workers = max(1, args.workers or 1)
            per_job = max(1, args.per_job or default_per_job(args.cluster, len(todo), workers))
            minutes = args.job_minutes or per_job * limits.timeout / workers / 60 + 10
            share = share_fields(assignment, course, limits, workers, not args.no_sandbox)
            try:
                made = executor(folder_of(root, assignment.id), args.cluster, workers, limits, minutes,
                                args.partition, options)
            except RuntimeError as err:  # e.g. no Slurm here
                raise CourseError(f"submitit cannot submit to {args.cluster} from this machine ({err}); run "
                                  "autograde where the scheduler's commands work (the login node), or use "
                                  "--cluster local") from err
            source = cluster_verdicts(course, todo, made, per_job, share, partial(not_graded, assignment))
            engine, isolation = None, f"decided on each node (see the jobs' logs), jobs of {per_job} on {args.cluster}"
        elif not todo:  # nothing to grade: no engine to start (the written answers and reports are still updated)
            workers, engine, source, isolation = 0, None, iter(()), None
        else:
            workers = max(1, min(args.workers or os.cpu_count() or 1, len(todo) or 1))
            engine = Engine(assignment, Settings(limits, workers=workers, sandbox=not args.no_sandbox),
                            hide=course.private_paths())
            source, isolation = local_verdicts(engine, course, todo, workers), None
    except CourseError as err:
        print(f"cannot autograde {args.assignment}: {err}", file=sys.stderr)
        return 2
    for warning in engine.warnings if engine else []:
        print(f"WARNING: {warning}", file=sys.stderr)
    if not args.quiet:
        how = "" if not (todo or on_cluster) else (
            f"; {workers} worker(s)" + (" per job" if on_cluster else "")
            + f"; isolation: {isolation or engine.sandbox.isolation.describe()}")
        print(f"{assignment.id}: {len(students)} students, {len(todo)} to grade, {len(students) - len(todo)} "
              f"already graded" + (f" ({len(retry)} to record again)" if retry else "") + how)
    from autograder.commands.nbgrader_hooks import write_course_config  # imports nbgrader: only here

    try:
        config = write_course_config(root)
    except OSError as err:
        config = None
        print(f"WARNING: could not write {root / 'nbgrader_config.py'} ({err}); run nbgrader's own commands "
              "(formgrader, generate_feedback) in this folder with the course's nbgrader_config.py, or they show the "
              "rubrics to students", file=sys.stderr)
    if config and not args.quiet:
        print(f"wrote {config.name}: nbgrader's own commands in this folder (formgrader, generate_feedback, export) "
              "use the course's configuration (rubrics for graders only)")
    start = time.monotonic()
    try:
        done = grade_class(course, source, len(todo), retry, quiet=args.quiet)
    finally:
        if engine:
            engine.close()
    elapsed = time.monotonic() - start
    results = [done.get(s) or course.previous(s) or Verdict(student=s, status=Status.MISSING) for s in students]
    manual = hand_graded(course, results)  # the written answers' points from the gradebook (formgrader's)
    paths = report_class(course, results, manual)
    if not args.quiet:
        print_table(results, assignment, manual)
        if todo:
            print(f"graded {len(todo)} submission(s) in {elapsed:.1f} s ({elapsed / len(todo):.1f} s per submission "
                  f"with {workers} worker(s){' per job' if on_cluster else ''})")
        print("wrote " + ", ".join(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths))
    look = [r for r in results if r.status in (Status.NOT_GRADED, Status.NOT_RECORDED)]
    for r in look:
        print(f"NEEDS A LOOK: {r.student}: {r.status}: {explain(r)}", file=sys.stderr)
    return 1 if look or len(paths) < 3 else 0


def local_verdicts(engine, course: ClassFolder, todo: list[str],
                   workers: int) -> Iterator[tuple[str, Verdict, bytes | None]]:
    """Yields ``(student, verdict, raw)`` as the engine grades ``todo`` here, ``workers`` at once."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(grade_student, engine, course, s): s for s in todo}
        for future in as_completed(futures):
            student = futures[future]
            try:
                result, raw = future.result()
            except Exception as err:  # noqa: BLE001 - this student's grading failed in the grader itself
                result, raw = engine.not_graded(f"the grader failed ({_error(err)})"), None
                result.student, result.notebook = student, str(course.submission(student))
            yield student, result, raw


class Progress:
    """How far grading is and about how long the rest takes: a bar on a terminal, else a line every tenth."""

    def __init__(self, what: str, total: int, quiet: bool):
        from tqdm import tqdm

        self.what, self.total, self.done = what, total, 0
        self.start, self.quiet = time.monotonic(), quiet or not total
        self.terminal = sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=what, unit="nb", disable=self.quiet or not self.terminal)
        self.said = 0

    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before the first submission)."""
        if not self.done:
            return None
        return (time.monotonic() - self.start) / self.done * (self.total - self.done)

    def update(self, student: str, status) -> None:
        self.done += 1
        left = self.eta()
        text = f"{student}: {status}" + (f"; about {_duration(left)} left" if left else "")
        if not self.quiet and self.terminal:
            self.bar.set_postfix_str(text)
            self.bar.update()
        elif not self.quiet and (self.done * 10 // self.total > self.said * 10 // self.total or self.done == 1):
            self.said = self.done
            print(f"{self.what}: {self.done}/{self.total} graded in {_duration(time.monotonic() - self.start)}"
                  + (f", about {_duration(left)} left" if left else ""), file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min" if seconds >= 3600 else (
        f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s")


def grade_class(course: ClassFolder, verdicts, total: int, retry: list[str], quiet: bool = True) -> dict[str, Verdict]:
    """Finish each verdict of ``verdicts`` (``(student, verdict, raw)``, ``total`` of them) as it arrives
    (:func:`finish`); finish ``retry`` again from their previous verdicts (a step after grading failed last time).
    Returns this run's results."""
    os.environ["PATH"] = venv_env()["PATH"]  # nbgrader runs alembic
    done: dict[str, Verdict] = {}
    with tempfile.TemporaryDirectory(prefix="stage-") as stage:
        recorder = LazyRecorder(course, Path(stage))
        for student in retry:
            path = course.submission(student)
            with contextlib.suppress(OSError):
                done[student] = finish(course, recorder, course.previous(student), path.read_bytes())
        progress = Progress(f"autograde {course.assignment.id}", total, quiet)
        try:
            for student, result, raw in verdicts:
                done[student] = finish(course, recorder, result, raw)
                progress.update(student, done[student].status)
        finally:
            progress.close()
    return done


def report_class(course: ClassFolder, results: list[Verdict], manual=None) -> list[Path]:
    """``grades.csv``, ``report.html`` and the course index; a failure to write them is said, never raised."""
    from autograder.commands.report import write_course_index, write_reports

    paths: list[Path] = []
    try:
        paths += write_reports(course.reports(), results, course.assignment, manual)
        paths.append(write_course_index(course.reports().parent))
    except Exception as err:  # noqa: BLE001 - every result file is kept: the reports can be written again
        print(f"cannot write the class reports in {course.reports()}: {_error(err)}; every student's result file is "
              "kept in autograded/, so the next autograde run writes them", file=sys.stderr)
    return paths
