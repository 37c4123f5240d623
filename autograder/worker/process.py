"""The grading process inside the sandbox: ``python -m autograder.worker`` (started by the engine).

It never reads a course file. Everything comes through stdin as length-prefixed JSON frames:

1. an *init* frame: the assignment's id, graders folder, units and parts, grading environment, what to import;
   the worker imports it all once (torch, the notebook's own imports, pytest, the graders) and says ``ready``;
2. then one *job* per submission: the submission's program (:func:`autograder.assignment.submission.program`) and its
   limits.
   For each unit the worker forks a **fresh process** from its warm state, which

   * reads its own frame (asked for on stdout, written by the engine): the reference notebook in which that unit's
     own cell is the released stub (so the answer is never in the process) and the unit's reference values; then
     closes stdin, so no other frame can be read;
   * runs the student's program from the top, in order, as a kernel would ("Run all"), and the unit's visible test
     cell at its place, recording whether it passed;
   * loads the reference definitions and runs the unit's pytest graders (:func:`autograder.runtime.runner.grade_unit`)
     with an audit hook and an integrity guard armed, and sends one result through a pipe of its own.

   A cell of the program that crashes the process, is killed for memory or runs past its time limit is skipped and
   the unit's process started again without it (reported: a kernel would have been interrupted there). Units run
   ``parallel`` at a time; their time limits add up within the submission's. After a job every process the job left
   is killed and its scratch folder removed, so the next submission starts clean.

Tamper sensors (in a unit's process): a snapshot of the graders', pytest's, torch's and the builtins' functions is
compared after every cell of the program and after every check (a change is undone and reported: the unit that owns
the cell scores zero, or every unit when the cell is no unit's), and a Python audit hook (which Python code cannot
remove) records opening course files, network use, starting processes, memory introspection and new audit hooks.

The modules: :mod:`~autograder.worker.messages` (the channels), :mod:`~autograder.worker.sensors` (tamper sensors),
:mod:`~autograder.worker.kernel` (what a kernel gives the program), :mod:`~autograder.worker.unit` (a unit's process),
:mod:`~autograder.worker.job` (scheduling one submission's units), this one (start, jobs, clean-up).
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import shutil
import signal
import sys
import tempfile
import time

from autograder.worker.job import Job
from autograder.worker.messages import line, read_frame, write_all
from autograder.worker.sensors import SCRATCH, Audit, Guard


def _preload(init: dict) -> None:
    """Import once, before any fork, what every unit's process needs."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    for name in ["torch", "numpy", "pytest", *init.get("preload", [])]:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    import autograder.runtime.definitions  # noqa: F401
    from autograder.runtime.runner import graders_package

    package = graders_package(init["graders"])
    for unit in init["units"]:
        with contextlib.suppress(Exception):
            importlib.import_module(f"{package}.test_{unit}")
    warmup = tempfile.mkdtemp(prefix="warmup-")
    try:  # the first pytest run in a process loads its plugins: do it here, once
        with open(os.path.join(warmup, "test_warmup.py"), "w") as handle:
            handle.write("def test_warmup():\n    pass\n")
        from autograder.runtime.runner import run_graders

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_graders(os.path.join(warmup, "test_warmup.py"))
    finally:
        shutil.rmtree(warmup, ignore_errors=True)
        for name in [n for n in sys.modules if n.startswith("test_warmup")]:
            del sys.modules[name]


def _clean_up(init: dict, workdir: str) -> None:
    """Kill whatever the job left behind and empty its scratch space, so that the next job starts clean."""
    if init.get("pid_namespace") and os.getpid() <= 3:  # only inside the sandbox's own pid namespace
        for _ in range(50):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(-1, signal.SIGKILL)  # every process but this one (and the namespace's init)
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]
            if not others:
                break
            time.sleep(0.02)
    shutil.rmtree(workdir, ignore_errors=True)
    if init.get("private_tmp"):  # the sandbox's own /tmp: nothing a job wrote there may reach the next one
        for folder in (SCRATCH, "/dev/shm"):
            with contextlib.suppress(OSError):
                for name in os.listdir(folder):
                    path = os.path.join(folder, name)
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(path)


def main() -> int:
    out = os.dup(1)
    os.set_inheritable(out, False)

    def emit(event: str, **fields) -> None:
        write_all(out, line(event, **fields))

    os.register_at_fork(after_in_child=lambda: os.close(out))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    started = time.monotonic()
    init = read_frame(0)
    if init is None:
        return 0
    audit = Audit(init["protected"])
    sys.addaudithook(audit)
    with contextlib.suppress(OSError, AttributeError, ImportError):  # no other process may read this one's memory
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    sys.path.insert(0, init["root"])
    _preload(init)
    guard = Guard()
    gc.collect()
    gc.freeze()  # the imported world is permanent: a unit's process never scans it (and never copies it)
    emit("ready", seconds=round(time.monotonic() - started, 2))
    durations: dict[str, float] = {}  # seconds per unit in earlier jobs: the slowest start first
    while True:
        job = read_frame(0)
        if job is None:
            return 0
        job["dir"] = tempfile.mkdtemp(prefix="job-")
        try:
            Job(init, job, emit, audit, guard, durations).run()
        finally:
            _clean_up(init, job["dir"])


if __name__ == "__main__":
    sys.exit(main())
