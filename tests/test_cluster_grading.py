"""A class graded across a cluster (``autograde --executor submitit``), through submitit's local executor: the same
grades as the local path; a job killed midway costs only the submissions it had not graded, and a rerun grades exactly
those. Slurm itself is not here: its job script is checked as submitit writes it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpus import LIMITS, class_results, points_per_test

from autograder.commands import venv_env
from autograder.commands.cluster import executor, split
from autograder.sandbox.isolation import Limits

PER_JOB = 4


def sample(corpus) -> list:
    """Eight students: the correct and the untouched notebook, and planted bugs of six units."""
    chosen = [e for e in corpus if e.name in ("ex-correct", "ex-untouched")]
    units = []
    for entry in corpus:
        if entry.kind == "mutant" and entry.unit not in units and len(chosen) < 8:
            units.append(entry.unit)
            chosen.append(entry)
    return chosen


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def kill_tree(pid: int) -> None:
    """What a node that dies does to a job: every process of it stops at once (stopped first, so none forks on)."""
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for process in descendants(pid):
            try:
                os.kill(process, sig)
            except ProcessLookupError:
                pass


def autograde_command(assignment, course: Path) -> list[str]:
    return [sys.executable, "-m", "autograder", "autograde", assignment.id, "--course", str(course), "--root",
            str(assignment.root), *LIMITS, "--executor", "submitit", "--cluster", "local", "--per-job",
            str(PER_JOB), "--workers", "1"]


def same_grades(verdict: dict, local: dict) -> bool:
    return (verdict["status"], verdict["score"], points_per_test(verdict)) == (
        local["status"], local["score"], points_per_test(local))


@pytest.mark.slow
def test_a_job_killed_midway_costs_only_its_ungraded_submissions_and_a_rerun_gives_the_local_grades(
        assignment, corpus, corpus_files, graded_class, tmp_path):
    _, local = graded_class
    chosen = sample(corpus)
    course = tmp_path / "course"
    for entry in chosen:
        shutil.copytree(corpus_files[0] / "submitted" / entry.name, course / "submitted" / entry.name)
    folder = course / "cluster" / assignment.id
    started = time.monotonic()
    run = subprocess.Popen(autograde_command(assignment, course), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=venv_env())
    try:
        deadline = time.monotonic() + 600
        while not (folder / "jobs.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        jobs = json.loads((folder / "jobs.json").read_text())
        assert len(jobs) == 2 and sorted(s for j in jobs.values() for s in j["students"]) == sorted(
            e.name for e in chosen)
        victim, share = next(iter(jobs.items()))

        def started_grading() -> bool:  # a verdict of the victim's share is written (maybe recorded already)
            return any((folder / "verdicts" / f"{s}.json").is_file() or (
                course / "autograded" / s / assignment.id / f"{Path(assignment.notebook).stem}-autograde.json"
            ).is_file() for s in share["students"])

        while not started_grading() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started_grading(), "the job graded nothing in 10 minutes"
        kill_tree(int(victim))  # the local executor's job id is its process id
        out, err = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
    first = time.monotonic() - started
    results = class_results(assignment, course)
    lost = sorted(s for s, v in results.items() if v["status"] == "not-graded")
    assert run.returncode == 1, err[-3000:]
    assert lost and set(lost) < set(share["students"]), (lost, err[-3000:])  # only the killed job's, not all of it
    for student in lost:
        assert f"cluster job {victim} ended" in " ".join(results[student]["problems"])
        assert f"NEEDS A LOOK: {student}: not-graded" in err
    graded = [s for s in results if s not in lost]
    assert all(same_grades(results[s], local[s]) for s in graded), "a job's grade differs from the local run's"

    started = time.monotonic()
    again = subprocess.run(autograde_command(assignment, course), capture_output=True, text=True, env=venv_env(),
                           timeout=900)
    second = time.monotonic() - started
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(chosen)} students, {len(lost)} to grade" in again.stdout, again.stdout[-2000:]
    results = class_results(assignment, course)
    differ = {s: (v["status"], v["score"], local[s]["score"]) for s, v in results.items()
              if not same_grades(v, local[s])}
    assert len(results) == len(chosen) and not differ, differ
    assert not list((folder / "verdicts").glob("*.json"))  # every staged verdict was recorded, then dropped
    print(f"\n{len(chosen)} submissions in {len(jobs)} jobs: {len(graded)} graded before a job was killed "
          f"({first:.0f} s), the {len(lost)} it left graded by the rerun ({second:.0f} s); grades equal the local "
          "run's")


def test_a_slurm_job_asks_for_its_partition_cores_memory_time_and_options(tmp_path, monkeypatch):
    """submitit refuses to build a Slurm executor where Slurm is missing: a stand-in ``srun`` lets it write the job
    script it would submit."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    made = executor(tmp_path / "cluster", "slurm", 2, Limits(memory_mb=3000), 25.5, "grading",
                    {"account": "course-staff"})
    script = made._executor._make_submission_file_text("echo", "uid")
    for line in ("#SBATCH --partition=grading", "#SBATCH --cpus-per-task=2", "#SBATCH --time=26",
                 "#SBATCH --mem=8GB", "#SBATCH --account=course-staff"):
        assert line in script, script
    assert split(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]


def test_without_slurm_autograde_says_where_to_run_and_grades_nothing(dino, tmp_path, monkeypatch):
    from autograder.commands import grade_class

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    (tmp_path / "submitted" / "s1" / dino.id).mkdir(parents=True)
    code = grade_class.main([dino.id, "--course", str(tmp_path), "--executor", "submitit", "--cluster", "slurm",
                             "--quiet"])
    assert code == 2
    assert not (tmp_path / "autograded").exists()
