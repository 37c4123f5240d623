"""One submission's job in the worker: each unit in a fresh process forked from the warm worker, ``parallel`` at a
time, watched for time, memory and processes; a program cell that takes a unit's process down is skipped and the
unit started again without it."""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import time

from autograder.sandbox.isolation import event_count
from autograder.worker.messages import line, lines, write_all
from autograder.worker.sensors import Audit, Guard
from autograder.worker.unit import resident, status_kb, unit_process

RERUNS = 3               # how often a unit's process is started again after a cell that had to be skipped
NEAR_LIMIT = 256 << 20   # a process this close to its address-space limit was refused its allocations
HANDOVER_SECONDS = 60    # time a unit's process may take to read its frame (meanwhile no other unit starts)


class Child:
    """A unit's process as the worker sees it: its pipe, its phase and what it has told so far."""

    def __init__(self, unit: str, pid: int, fd: int, limit: float, attempt: int):
        self.unit, self.pid, self.fd, self.attempt = unit, pid, fd, attempt
        self.started = time.monotonic()
        self.deadline = self.started + limit
        self.limit = limit
        self.buffer = b""
        self.cell: int | None = None      # the program cell running now (None: not in the program)
        self.cell_started = 0.0
        self.phase = "frame"              # frame -> program -> checks
        self.visible: dict = {}
        self.result: dict | None = None
        self.killed: str | None = None    # why we killed it ("hung" or "time")
        self.oom_before = 0
        self.pids_before = 0
        self.pids_mark = 0
        self.program_seconds = None
        self.forking_cells: list[int] = []  # program cells that forked (checked against the process limit)
        self.resident_at_start = 0        # bytes it held when forked (shared with the worker): not its own use
        self.peak = 0                     # the most bytes it held beyond that
        self.address_limit = 0            # its address-space limit (0: a memory cgroup limits it instead)
        self.memory_exhausted = False     # it was stopped for memory, or stopped for time while out of memory
        self.first_fork: int | None = None  # the program cell that forked first (told as it forks)

    def feed(self, data: bytes) -> None:
        """Take in what the unit's process wrote (line messages, see :mod:`autograder.worker.unit`)."""
        messages, self.buffer = lines(self.buffer + data)
        for message in messages:
            self.take(message["event"], message)

    def take(self, event: str, message: dict) -> None:
        pos = message.get("pos")
        if event == "frame-read":
            self.phase = "program"
        elif event == "cell" and isinstance(pos, int):
            self.cell, self.cell_started = pos, time.monotonic()
        elif event == "address-limit" and isinstance(message.get("bytes"), int):
            self.address_limit = message["bytes"]
        elif event == "forking" and isinstance(pos, int):
            self.first_fork = pos if self.first_fork is None else self.first_fork
        elif event == "forked" and isinstance(pos, int):
            self.forking_cells.append(pos)
        elif event == "visible":
            self.visible[str(message.get("grade_id"))] = {"passed": bool(message.get("passed")),
                                                          "message": str(message.get("message", ""))}
        elif event == "program-done":
            self.phase, self.cell, self.program_seconds = "checks", None, message.get("seconds")
        elif event == "result" and self.result is None and self.phase == "checks":
            self.result = message.get("result")


def fork_retrying(deadline: float) -> int:
    """``os.fork``, retried while the process limit is full (what a previous unit started is still dying)."""
    while True:
        try:
            return os.fork()
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def group_sizes() -> dict[int, int]:
    """How many processes each process group has (from /proc: in the sandbox, only the sandbox's own)."""
    sizes: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 2:  # state, parent, process group (a zombie too: it holds its place until reaped)
            sizes[int(fields[2])] = sizes.get(int(fields[2]), 0) + 1
    return sizes


class Watchdog:
    """Watches a job's units for what the limits alone would catch too late: a cell that ran into the process limit,
    a fork bomb, a unit holding more memory than allowed. It decides; the job stops the unit."""

    def __init__(self, init: dict, job: dict):
        self.pids_events = init.get("pids_events")
        self.refused = event_count(self.pids_events, "max")  # forks the process limit refused so far
        self.program = job["program"]
        self.memory_limit = int(job["memory_mb"]) << 20

    def forking_problem(self, child: Child) -> dict | None:
        """A program cell that ran into the process limit is skipped for the units that start after it (it would
        hit the limit in each of them); the unit that owns it is reported as crashed. Returns that problem."""
        cells, child.forking_cells = child.forking_cells, []
        count = event_count(self.pids_events, "max")
        problem = None
        if cells and count > child.pids_mark:
            cell = next((c for c in self.program if c["pos"] == cells[0]), None)
            if cell is not None:
                problem = {"pos": cell["pos"], "label": cell["label"], "kind": "crashed", "unit": cell["unit"],
                           "message": f"{cell['label']} started more processes than allowed (the limit stopped "
                                      "it); it was skipped"}
        if cells:
            child.pids_mark = count
        return problem

    def fork_bomb(self, running: dict[int, Child]) -> Child | None:
        """The process limit refused a fork: the unit whose process group holds the most processes is to be stopped
        at once (a fork bomb would race the limit for as long as it runs, and leave the other units without
        threads). The cell that forked first is to blame, even when the program has moved on."""
        count = event_count(self.pids_events, "max")
        if count <= self.refused:
            return None
        self.refused = count
        sizes = group_sizes()
        child = max(running.values(), key=lambda c: sizes.get(c.pid, 0), default=None)
        if child is None or sizes.get(child.pid, 0) < 2:
            return None
        if child.first_fork is not None:
            if child.result is None:
                child.phase, child.cell = "program", child.first_fork
            else:
                child.forking_cells = [child.first_fork]
                child.pids_mark = -1
        return child

    def over_memory(self, running: dict[int, Child]) -> list[Child]:
        """The units whose process holds more than its memory beyond what it shared with the worker when forked
        (stopped at once, ``memory``, with or without a memory cgroup, before they slow every unit down)."""
        over = []
        for child in list(running.values()):
            held = resident(child.pid)
            if held:
                child.peak = max(child.peak, held - child.resident_at_start)
                if child.peak > self.memory_limit:
                    over.append(child)
        return over


class Job:
    """Runs one submission's units (the worker's side: it never runs the student's code itself)."""

    def __init__(self, init: dict, job: dict, emit, audit: Audit, guard: Guard, durations: dict[str, float],
                 run_unit=unit_process):
        """``emit(event, **fields)`` tells the engine; ``durations`` (seconds per unit in earlier jobs, updated here)
        starts the slowest units first; ``run_unit`` is what a unit's process runs (:func:`unit_process`)."""
        self.init, self.job, self.emit, self.audit, self.guard = init, job, emit, audit, guard
        self.durations, self.run_unit = durations, run_unit
        self.skip: set[int] = set()
        self.problems: dict[int, dict] = {}
        self.attempts: dict[str, int] = {}
        self.pending = sorted(job["units"], key=lambda unit: -durations.get(unit, 0.0))
        self.running: dict[int, Child] = {}
        self.deadline = time.monotonic() + float(job["timeout"])
        self.parallel = max(1, int(job.get("parallel", 1)))
        self.watchdog = Watchdog(init, job)

    def run(self) -> None:
        while self.pending or self.running:
            while self.pending and len(self.running) < self.parallel and self._left() > 1 and \
                    not any(child.phase == "frame" for child in self.running.values()):
                self._start(self.pending.pop(0))  # one hand-over at a time: every unit reads the worker's stdin
            if not self.running:
                break
            ready, _, _ = select.select(list(self.running), [], [], 0.1)
            for fd in ready:
                child = self.running[fd]
                try:
                    data = os.read(fd, 1 << 20)
                except OSError:
                    data = b""
                if data:
                    child.feed(data)
                    self._forks(child)
                else:
                    self._end(child)
            self._watch_processes()
            self._watch_memory()
            now = time.monotonic()
            for child in list(self.running.values()):
                if child.phase == "program" and child.cell is not None and \
                        now - child.cell_started > self.job["cell_seconds"]:
                    self._kill(child, "hung")
                elif now > child.deadline or child.phase == "frame" and now - child.started > HANDOVER_SECONDS:
                    self._kill(child, "time")
        for unit in self.pending:
            self.emit("unit", unit=unit, abandoned=True)
        self.emit("job-done", problems=list(self.problems.values()))

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def _start(self, unit: str) -> None:
        waves = math.ceil((len(self.pending) + 1) / self.parallel)  # this unit and those after it, `parallel` a time
        limit = self._left() / max(1, waves)
        attempt = self.attempts.get(unit, 0)
        self.attempts[unit] = attempt + 1
        read_fd, write_fd = os.pipe()
        job = {**self.job, "unit_seconds": limit}
        oom = event_count(self.init.get("oom_events"), self.init.get("oom_key", "oom_kill"))
        pids = event_count(self.init.get("pids_events"), "max")
        pid = fork_retrying(self.deadline)
        if pid == 0:  # the unit's process
            code = 0
            try:
                os.setpgid(0, 0)
                os.close(read_fd)

                def send(event: str, **fields) -> None:
                    write_all(write_fd, line(event, **fields))

                self.run_unit(self.init, job, unit, set(self.skip), send, self.audit, self.guard)
            except BaseException:  # noqa: BLE001 - our own failure: reported to the instructor, not the student
                import traceback

                with contextlib.suppress(OSError):
                    write_all(write_fd, line("result", result={"internal_error": traceback.format_exc()[-3000:]}))
                code = 70
            os._exit(code)
        os.close(write_fd)
        child = Child(unit, pid, read_fd, limit, attempt)
        child.resident_at_start = resident(pid)
        child.oom_before, child.pids_before, child.pids_mark = oom, pids, pids
        self.running[read_fd] = child
        self.emit("frame", unit=unit)  # the engine writes this unit's frame; the child reads it (phase "frame")

    def _forks(self, child: Child) -> None:
        problem = self.watchdog.forking_problem(child)
        if problem is not None and problem["pos"] not in self.problems:
            self.problems[problem["pos"]] = problem
            self.skip.add(problem["pos"])

    def _watch_processes(self) -> None:
        child = self.watchdog.fork_bomb(self.running)
        if child is not None:
            if child.forking_cells:
                self._forks(child)
            self._kill(child, "processes")

    def _watch_memory(self) -> None:
        for child in self.watchdog.over_memory(self.running):
            self._kill(child, "memory")

    def _kill(self, child: Child, why: str) -> None:
        child.killed = why
        if why == "memory":
            child.memory_exhausted = True
        elif why in ("time", "hung"):  # still running: was it refused memory it kept asking for?
            peak = status_kb(child.pid, "VmPeak") * 1024
            child.memory_exhausted = bool(child.address_limit and peak + NEAR_LIMIT >= child.address_limit)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        self._end(child)

    def _end(self, child: Child) -> None:
        self.running.pop(child.fd, None)
        with contextlib.suppress(OSError):
            while True:  # what is still in the pipe
                ready, _, _ = select.select([child.fd], [], [], 0)
                data = os.read(child.fd, 1 << 20) if ready else b""
                if not data:
                    break
                child.feed(data)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)  # whatever the process started
        _, status = os.waitpid(child.pid, 0)
        if child.killed == "processes":  # the next unit starts when the processes are gone, not while they die
            ends = time.monotonic() + 10
            while group_sizes().get(child.pid) and time.monotonic() < ends:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                time.sleep(0.05)
        os.close(child.fd)
        exit_code = os.waitstatus_to_exitcode(status)
        oom = event_count(self.init.get("oom_events"), self.init.get("oom_key", "oom_kill")) > child.oom_before
        forks = event_count(self.init.get("pids_events"), "max") > child.pids_before
        seconds = round(time.monotonic() - child.started, 2)
        if child.result is None and child.phase == "program" and child.cell is not None:
            self._skip_cell(child, exit_code, oom)
            return
        fields = {"unit": child.unit, "seconds": seconds, "exit_code": exit_code,
                 "killed": child.killed, "out_of_memory": oom, "too_many_processes": forks, "phase": child.phase,
                 "limit": round(child.limit, 1), "visible": child.visible, "attempts": child.attempt + 1,
                 "program_seconds": child.program_seconds, "memory_exhausted": child.memory_exhausted,
                 "peak_mb": round(child.peak / 2**20), "memory_mb": int(self.job["memory_mb"])}
        if child.result is not None:
            fields.update({k: v for k, v in child.result.items() if k not in ("event", "unit")})
            self.durations[child.unit] = seconds
        self.emit("unit", **fields)

    def _skip_cell(self, child: Child, exit_code: int, oom: bool) -> None:
        """A cell of the program took the unit's process down: skip it from now on and start the unit again."""
        cell = next((c for c in self.job["program"] if c["pos"] == child.cell), None)
        label = cell["label"] if cell else f"cell {child.cell}"
        if child.memory_exhausted or oom:
            kind, what = "memory", f"used more memory than allowed ({self.job['memory_mb']} MB) and was stopped"
        elif child.killed == "hung":
            kind, what = "timeout", f"ran for more than {self.job['cell_seconds']:.0f} s"
        elif child.killed == "processes":
            kind, what = "crashed", "started more processes than allowed (the limit stopped it)"
        elif child.killed == "time":
            kind, what = "timeout", f"was still running when the time for this part ({child.limit:.0f} s) ran out"
        else:
            kind, what = "crashed", f"ended the grading process (exit code {exit_code})"
        self.problems.setdefault(child.cell, {"pos": child.cell, "label": label, "kind": kind,
                                              "unit": cell["unit"] if cell else None,
                                              "message": f"{label} {what}; it was skipped, as an interrupted cell "
                                                         "in a kernel would be"})
        self.skip.add(child.cell)
        if child.attempt < RERUNS and self._left() > 1:
            self.pending.insert(0, child.unit)
        else:
            self.emit("unit", unit=child.unit, abandoned=True)

