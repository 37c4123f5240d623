"""A class graded across a cluster: ``python -m autograder autograde ASSIGNMENT --executor submitit``.

The class is split into jobs of ``--per-job`` submissions, submitted through submitit to Slurm (``--cluster slurm``)
or run as local processes (``--cluster local``, the same code path on one machine). Each job grades its share with the
same engine and sandbox as a local run (:func:`grade_share`, on its node) and writes each verdict, as soon as it has
it, to ``COURSE/cluster/ASSIGNMENT/verdicts/<student>.json``; the instructor's process (:func:`cluster_verdicts`)
picks them up as they appear and records them in the one gradebook, exactly as it records a local run's.

What a job leaves behind is never lost: a verdict already written stays until it is recorded, also when the
instructor's process stops, so the next run records it without grading it again. A job that fails, is cancelled or
is lost costs only the submissions it had not graded yet: they are ``not-graded`` (naming the job and how it ended)
and the next run grades them. Every node must see the course folder at the same path (a shared file system) and run
this course's Python environment; ``COURSE/cluster/ASSIGNMENT/jobs.json`` says which job grades whom, and each job's
log is ``COURSE/cluster/ASSIGNMENT/jobs/<job id>_0_log.out`` (and ``.err``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from autograder.assignment.course import Assignment
from autograder.grading.verdict import Verdict
from autograder.sandbox.isolation import Limits

POLL_SECONDS = 0.5


@dataclass
class Share:
    """What one job grades, and how (plain data: submitit pickles it to the node)."""

    assignment: str
    root: str                 # the course with solutions/ and autograder/graders/
    course: str               # the nbgrader course folder (shared with the node)
    db_url: str
    students: list[str]
    limits: dict
    workers: int = 1
    cores: int = 1
    sandbox: bool = True


def folder_of(course_root: Path, assignment_id: str) -> Path:
    """``COURSE/cluster/ASSIGNMENT``: the staged verdicts, the job list and the jobs' logs."""
    return Path(course_root) / "cluster" / assignment_id


def verdict_file(course_root: Path, assignment_id: str, student: str) -> Path:
    return folder_of(course_root, assignment_id) / "verdicts" / f"{student}.json"


def grade_share(share: Share) -> list[str]:
    """Runs on a node: grade ``share.students`` (``share.workers`` at once), writing each verdict as soon as it is
    done. Returns the students graded."""
    from autograder.commands.grade_class import ClassFolder, grade_student, write_result
    from autograder.grading.engine import Engine, Settings

    assignment = Assignment.load(share.assignment, Path(share.root))
    course = ClassFolder(Path(share.course), assignment, share.db_url)
    settings = Settings(Limits(**share.limits), workers=share.workers, cores=share.cores, sandbox=share.sandbox)
    engine = Engine(assignment, settings, hide=course.private_paths())
    for warning in engine.warnings:
        print(f"WARNING: {warning}", flush=True)
    print(f"grading {len(share.students)} submission(s) of {assignment.id}, {share.workers} at once; isolation: "
          f"{engine.sandbox.isolation.describe()}", flush=True)

    def one(student: str) -> str:
        verdict, _ = grade_student(engine, course, student)
        write_result(verdict_file(course.root, assignment.id, student), verdict)
        print(f"{student}: {verdict.status}, {verdict.score:g} / {verdict.max_score:g} ({verdict.seconds} s)",
              flush=True)
        return student

    try:
        with ThreadPoolExecutor(max_workers=max(1, share.workers)) as pool:
            return list(pool.map(one, share.students))
    finally:
        engine.close()


def executor(folder: Path, cluster: str, workers: int, limits: Limits, minutes: float, partition: str | None,
             options: dict[str, str]):
    """submitit's executor for ``cluster`` ("slurm" or "local"): a job gets ``workers`` cores, their memory, and
    ``minutes`` of time; ``partition`` and ``options`` (``#SBATCH --KEY=VALUE``) go to Slurm."""
    with warnings.catch_warnings():  # submitit imports pkg_resources, which warns
        warnings.simplefilter("ignore")
        import submitit

        made = submitit.AutoExecutor(folder=folder / "jobs", cluster=cluster)
    parameters = {"timeout_min": max(1, int(minutes + 0.999)), "cpus_per_task": workers,
                  "mem_gb": max(2, -(-workers * limits.memory_mb // 1024) + 2), "name": "autograde"}
    if cluster == "slurm":
        parameters |= {"slurm_partition": partition} if partition else {}
        parameters |= {"slurm_additional_parameters": dict(options)} if options else {}
    made.update_parameters(**parameters)
    return made


def split(students: list[str], per_job: int) -> list[list[str]]:
    return [students[i:i + per_job] for i in range(0, len(students), per_job)]


def staged(course, student: str) -> tuple[Verdict, bytes | None] | str | None:
    """The verdict a job wrote for ``student`` and the bytes it graded; None: there is none; a reason (str): there is
    one, but it no longer holds (another submission, another grader), and it is dropped."""
    path = verdict_file(course.root, course.assignment.id, student)
    try:
        verdict = Verdict.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    submission = course.submission(student)
    reason = None
    if verdict.grader != course.assignment.fingerprint:
        reason = (f"its job graded it with another grader (fingerprint {verdict.grader}, here "
                  f"{course.assignment.fingerprint}): the node's course files or package versions differ from this "
                  "machine's, or they changed while it was graded; make them the same and grade it again")
    elif verdict.sha256 != course.digest(student):
        reason = "the submission changed while its job graded it"
    if reason:
        path.unlink(missing_ok=True)
        return reason
    try:
        raw = submission.read_bytes() if submission.is_file() else None
    except OSError:
        raw = None
    return verdict, raw


def forget(course, student: str) -> None:
    """The staged verdict of a student whose result file is written (recorded): no longer needed."""
    if course.result_file(student).is_file():
        verdict_file(course.root, course.assignment.id, student).unlink(missing_ok=True)


def _ended(job) -> str:
    """How a finished job ended, in a few words."""
    try:
        state = job.state
    except Exception:  # noqa: BLE001 - the scheduler could not say
        state = "unknown"
    try:
        error = job.exception()
    except Exception as err:  # noqa: BLE001 - submitit raises when it cannot read the job's outcome
        error = err
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200] if error else ""
    return f"{state}" + (f": {reason}" if reason else "")


def cluster_verdicts(course, todo: list[str], made, per_job: int, share: dict,
                     not_graded) -> Iterator[tuple[str, Verdict, bytes | None]]:
    """Yields ``(student, verdict, raw)`` for every student of ``todo``: first the verdicts staged by jobs of an
    earlier run, then those of the jobs submitted now, as they appear; a student whose job ended without grading
    them gets ``not_graded(why)``. ``made`` is submitit's executor (:func:`executor`); ``share`` holds the
    :class:`Share` fields other than the students."""
    folder = folder_of(course.root, course.assignment.id)
    pending = []
    for student in todo:
        found = staged(course, student)
        if isinstance(found, tuple):
            yield student, *found
            forget(course, student)
        else:
            pending.append(student)
    if not pending:
        return
    (folder / "verdicts").mkdir(parents=True, exist_ok=True)
    chunks = split(pending, per_job)
    with made.batch():
        jobs = [made.submit(grade_share, Share(students=chunk, **share)) for chunk in chunks]
    owner = {s: job for job, chunk in zip(jobs, chunks, strict=True) for s in chunk}
    listing = {job.job_id: {"students": chunk, "submitted": time.strftime("%Y-%m-%d %H:%M:%S")}
               for job, chunk in zip(jobs, chunks, strict=True)}
    (folder / "jobs.json").write_text(json.dumps(listing, indent=1) + "\n")
    print(f"submitted {len(jobs)} job(s) of up to {per_job} submission(s) (logs: {folder / 'jobs'})",
          file=sys.stderr, flush=True)
    left = set(pending)
    while left:
        finished = {job for job in {owner[s] for s in left} if job.done()}
        for student in sorted(left):
            found = staged(course, student)
            if isinstance(found, tuple):
                left.discard(student)
                yield student, *found
                forget(course, student)
            elif found:
                left.discard(student)
                yield student, _not_graded(not_graded, course, student, found), None
        for job in finished:  # its verdicts were all written before it ended: whoever is left was not graded
            for student in sorted(s for s in left if owner[s] is job):
                left.discard(student)
                yield student, _not_graded(
                    not_graded, course, student, f"its cluster job {job.job_id} ended ({_ended(job)}) before grading "
                    f"it; its log is cluster/{course.assignment.id}/jobs/{job.job_id}_0_log.err"), None
        if left:
            time.sleep(POLL_SECONDS)


def _not_graded(not_graded, course, student: str, why: str) -> Verdict:
    verdict = not_graded(why)
    verdict.student, verdict.notebook = student, str(course.submission(student))
    return verdict


def share_fields(assignment: Assignment, course, limits: Limits, workers: int, sandbox: bool) -> dict:
    """The :class:`Share` of a job, but its students."""
    return {"assignment": assignment.id, "root": str(assignment.root), "course": str(course.root),
            "db_url": course.db_url, "limits": dataclasses.asdict(limits), "workers": workers,
            "cores": workers, "sandbox": sandbox}


def default_per_job(cluster: str, students: int, workers: int) -> int:
    """Local: one job per ``workers`` cores of this machine (all local jobs run at once); Slurm: 20 per job."""
    if cluster == "local":
        jobs = max(1, (os.cpu_count() or 1) // max(1, workers))
        return max(1, -(-students // jobs))
    return 20
