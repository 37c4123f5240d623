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
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import types

from autograder import COURSE_ROOT
from autograder.sandbox.isolation import event_count

SCRATCH = tempfile.gettempdir()  # the sandbox's only writable folder (/tmp there)
# the course and the Python installation are read-only, also where they live below SCRATCH
READ_ONLY = tuple(os.path.realpath(p) for p in (str(COURSE_ROOT),
                                               sys.prefix, sys.base_prefix))
CAP = 1 << 20            # characters of a student's printed output that are kept; the rest is counted and dropped
MESSAGE_CAP = 4000       # characters of one message that leave the process
RERUNS = 3               # how often a unit's process is started again after a cell that had to be skipped
SLACK_MB = 512           # address space beyond a unit's memory: thread stacks and allocator arenas it never fills
NEAR_LIMIT = 256 << 20   # a process this close to its address-space limit was refused its allocations
# what an exhausted memory raises: Python's MemoryError, torch's failed CPU and GPU allocations
OUT_OF_MEMORY = ("MemoryError", "can't allocate memory", "OutOfMemoryError", "CUDA out of memory")

# audit events that only an attempt on the grader explains (status ``tampered``) and those that are merely reported
TAMPER_EVENTS = {"gc.get_objects": "inspected every object in memory (gc.get_objects)",
                 "gc.get_referrers": "inspected the grader's objects (gc.get_referrers)",
                 "gc.get_referents": "inspected the grader's objects (gc.get_referents)",
                 "sys.addaudithook": "installed an audit hook",
                 "ctypes.dlopen": "loaded a C library with ctypes",
                 "ctypes.dlsym": "looked up a C function with ctypes",
                 "ctypes.addressof": "took a raw memory address with ctypes",
                 "ctypes.string_at": "read raw memory with ctypes",
                 "ctypes.cdata": "built raw memory objects with ctypes"}
PROCESS_EVENTS = ("os.fork", "os.forkpty", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn",
                  "os.spawn", "os.kill", "os.killpg", "pty.spawn")
NETWORK_EVENTS = ("socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto", "socket.gethostbyname")
PRIVATE_MEMORY = ("/proc/self/mem", "/proc/self/map_files")


# ------------------------------------------------------------------------------------------------------ frames
def read_frame(fd: int):
    """One length-prefixed JSON frame from ``fd`` (None at the end of the stream)."""
    head = _read_exactly(fd, 8)
    if len(head) < 8:
        return None
    return json.loads(_read_exactly(fd, struct.unpack(">Q", head)[0]))


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def frame(obj) -> bytes:
    data = json.dumps(obj).encode()
    return struct.pack(">Q", len(data)) + data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _cap(text: str) -> str:
    return text if len(text) <= MESSAGE_CAP else text[:MESSAGE_CAP] + " ..."


# ------------------------------------------------------------------------------------------------- sensors
class _Sink(io.TextIOBase):
    """Where a student's prints go: the first ``CAP`` characters are kept, the rest only counted."""

    def __init__(self):
        self.kept, self.count = [], 0

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        if self.count < CAP:
            self.kept.append(text[:CAP - self.count])
        self.count += len(text)
        return len(text)


def _below(path: str, folders) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


class _Audit:
    """Records what a student's code tries, with the unit that owns the code running (None: no unit's)."""

    def __init__(self, protected: list[str]):
        self.armed = False
        self.owner: str | None = None
        self.forked = False  # the code running now forked
        self.tell = None     # called with nothing when the code running now first forks
        self.protected = tuple(protected)
        self.tampered: list[list] = []   # [owner, what]
        self.notices: list[list] = []

    def __call__(self, event, args):
        if not self.armed:
            return
        self.armed = False  # the hook itself must not trigger events
        try:
            self._record(event, args)
        finally:
            self.armed = True

    def _record(self, event, args):
        if event == "sqlite3.connect" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            if _below(path, self.protected):
                self._add(self.tampered, f"tried to open the course database {path}")
        elif event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writing = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR)
            if _below(path, self.protected):
                self._add(self.tampered, f"tried to {'write' if writing else 'read'} the course file {path}")
            elif path.startswith(PRIVATE_MEMORY) or (path.startswith("/proc/") and path.endswith("/mem")):
                self._add(self.tampered, f"tried to read the grader's memory ({path})")
            elif writing and (_below(path, READ_ONLY) or not (path.startswith(("/dev/null", "/proc/self/"))
                                                               or _below(path, (SCRATCH,)))):
                self._add(self.notices, f"tried to write {path} (outside its working directory: blocked)")
        elif event in TAMPER_EVENTS:
            self._add(self.tampered, TAMPER_EVENTS[event])
        elif event.startswith(NETWORK_EVENTS):
            self._add(self.notices, f"tried to use the network ({event}: blocked)")
        elif event.startswith(PROCESS_EVENTS):
            if event.startswith(("os.fork", "os.forkpty")) and not self.forked:
                self.forked = True
                if self.tell is not None:
                    self.tell()
            self._add(self.notices, f"started or signalled processes ({event})")

    def _add(self, where: list, text: str) -> None:
        entry = [self.owner, text]
        if entry not in where and len(where) < 20:
            where.append(entry)


_MISSING = object()


class _Guard:
    """Snapshot of the functions a check relies on; :meth:`changes` undoes every change and names it."""

    MODULES = ("builtins", "math", "torch", "torch.nn", "torch.nn.functional", "numpy", "pytest", "_pytest.runner",
               "_pytest.python", "_pytest.reports", "_pytest.main", "_pytest.outcomes")

    def __init__(self):
        self.entries: list[tuple[object, str, object]] = []
        names = list(self.MODULES) + sorted(n for n in sys.modules if n == "autograder" or n.startswith("autograder."))
        for name in names:
            module = sys.modules.get(name)
            if isinstance(module, types.ModuleType):
                self._take(module, own=name.startswith("autograder"))
        for cls in (__import__("torch").Tensor, BaseException, AssertionError):
            self._take(cls, own=False)

    def _take(self, owner, own: bool) -> None:
        for key, value in list(vars(owner).items()):
            self.entries.append((owner, key, value))
            if own:
                code = getattr(value, "__code__", None)
                if code is not None:
                    self.entries.append((value, "__code__", code))
                for attr, member in list(vars(value).items()) if isinstance(value, type) else []:
                    self.entries.append((value, attr, member))
                    if getattr(member, "__code__", None) is not None:
                        self.entries.append((member, "__code__", member.__code__))

    def changes(self) -> list[str]:
        """What changed since the snapshot (put back as it was)."""
        changed = []
        for owner, key, value in self.entries:
            current = vars(owner).get(key, _MISSING) if key != "__code__" else getattr(owner, "__code__", None)
            if current is not value:
                label = f"{getattr(owner, '__name__', type(owner).__name__)}.{key}"
                if label not in changed:
                    changed.append(label)
                with contextlib.suppress(Exception):
                    setattr(owner, key, value)
        return changed


class _GuardPlugin:
    """pytest plugin: checks the guard after every check; a changed grader makes the unit score zero."""

    def __init__(self, guard: _Guard, audit: _Audit):
        self.guard, self.audit = guard, audit

    def pytest_runtest_teardown(self, item):
        changed = self.guard.changes()
        if changed:
            self.audit.tampered.append([self.audit.owner, "changed the grader's functions while a check ran: "
                                        + ", ".join(changed[:8])])


# ------------------------------------------------------------------------------------------- the student's program
class _Shell:
    """What ``get_ipython()`` returns while grading: magics and shell commands do nothing, except that the body of
    ``%%time``-like cell magics (and the statement of ``%time``) runs, since it is the student's code."""

    RUNS_PYTHON = ("time", "timeit", "capture", "prun")

    def __init__(self, names: dict):
        self.names = names

    def run_line_magic(self, name, line, *args, **kwargs):
        if name in self.RUNS_PYTHON and line.strip():
            exec(compile(line, "<magic>", "exec"), self.names)  # noqa: S102 - the student's own statement

    def run_cell_magic(self, name, line, body, *args, **kwargs):
        if name in self.RUNS_PYTHON:
            exec(compile(body, "<magic>", "exec"), self.names)  # noqa: S102 - the student's own cell

    def system(self, *args, **kwargs):
        return None

    getoutput = system

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _python_source(source: str) -> str:
    """IPython syntax (``%magic``, ``!command``) turned into Python, as a kernel does; plain Python unchanged."""
    if not any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()) and "?" not in source:
        return source
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - leave it to compile() to report the syntax error
        return source


def _fresh_main() -> dict:
    """The namespace of a fresh kernel: a module called __main__ with display() and get_ipython()."""
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    names = module.__dict__
    names["display"] = lambda *args, **kwargs: None
    names["get_ipython"] = lambda: shell
    shell = _Shell(names)
    return names


# ------------------------------------------------------------------------------------------------ a unit's process
def _unit_process(init: dict, job: dict, unit: str, skip: set, send, audit: _Audit, guard: _Guard) -> None:
    from autograder.runtime import definitions as units
    from autograder.runtime.runner import describe_exception, grade_unit, register_source

    me = os.getpid()
    payload = read_frame(0)
    send({"got-frame": True})
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nothing more to read; the student's C-level output goes nowhere
        os.dup2(devnull, fd)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")  # when memory runs out, this process goes first, never the worker
    address_limit = _limit_self(job, init)
    if address_limit:
        send({"address-limit": address_limit})
    sink = _Sink()
    sys.stdout = sys.stderr = sink
    units.QUIET_INTO[:] = [sink]  # what the cell and the checks print is counted, whoever redirects it
    os.environ.update(init["env"])
    workdir = os.path.join(job["dir"], unit)
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    import torch

    torch.set_num_threads(max(1, int(job.get("threads", 1))))
    names = _fresh_main()
    started = time.monotonic()
    cell_errors, memory_error = [], False
    for cell in job["program"]:
        if cell["pos"] in skip or (cell["kind"] == "visible" and cell["unit"] != unit):
            continue
        send({"cell": cell["pos"]})
        audit.owner = cell["unit"] if cell["kind"] in ("unit", "visible") else None
        filename = f"<{cell['label']}>"
        register_source(filename, cell["source"])
        error = None
        audit.forked = False
        audit.tell = lambda pos=cell["pos"]: send({"forking": pos})
        audit.armed = True
        try:
            with units.quiet():
                exec(compile(_python_source(cell["source"]), filename, "exec"), names)  # noqa: S102
        except BaseException as err:  # noqa: BLE001 - a failing cell is reported, and the program runs on
            error = err
        finally:
            audit.armed = False
            audit.tell = None
        if os.getpid() != me:  # a process the student's code forked never runs the grader's code
            os._exit(0)
        if audit.forked:
            send({"forked": cell["pos"]})
        changed = guard.changes()
        if changed:
            audit.tampered.append([audit.owner, "changed the grader's functions: " + ", ".join(changed[:8])])
        message = describe_exception(error, error.__traceback__) if error is not None else ""
        out_of_memory = error is not None and _out_of_memory(f"{type(error).__name__}: {error}")
        memory_error = memory_error or out_of_memory and audit.owner == unit
        if cell["kind"] == "visible":
            send({"visible": cell["grade_id"], "passed": error is None, "message": _cap(message)})
        elif error is not None:
            cell_errors.append({"pos": cell["pos"], "label": cell["label"], "unit": cell["unit"],
                                "message": _cap(message), "memory": out_of_memory})
    send({"program-done": True, "seconds": round(time.monotonic() - started, 2)})
    audit.owner = unit
    results = []
    with torch.random.fork_rng(devices=[]):
        ref = units.Definitions(payload["reference"], init["units"], dict(os.environ), stub=unit, label=f"unit_{unit}")
    units.install_reference(init["assignment"], ref)
    values = payload["values"]
    del payload  # the reference notebook's sources are not needed any more
    audit.armed = True
    try:
        results = grade_unit(unit, names, reference=ref, graders=init["graders"], part=init["units"][unit],
                             values=values, plugins=[_GuardPlugin(guard, audit)])
    finally:
        audit.armed = False
    changed = guard.changes()
    if changed:
        audit.tampered.append([unit, "changed the grader's functions: " + ", ".join(changed[:8])])
    if sink.count > CAP:
        audit.notices.append([None, f"printed {sink.count / 1e6:.1f} million characters (kept the first million)"])
    memory_error = memory_error or any(_out_of_memory(r.message) for r in results)
    send({"result": {"results": [{**r.__dict__, "message": _cap(r.message)} for r in results],
                     "cell_errors": cell_errors, "tampered": audit.tampered, "notices": audit.notices,
                     "memory_error": memory_error, "printed": sink.count,
                     "seconds": round(time.monotonic() - started, 2)}})


def _out_of_memory(text: str) -> bool:
    """Whether an error's text (type and message) says that an allocation failed."""
    return any(marker in text for marker in OUT_OF_MEMORY)


def _limit_self(job: dict, init: dict) -> int:
    """Resource limits of a unit's process: CPU seconds, and, where no memory cgroup is, the address space (what
    the process already maps, inherited from the worker, plus the unit's memory); returns that limit (0: none)."""
    import resource

    cpu = int(job["unit_seconds"] * max(1, int(job.get("threads", 1)))) + 30
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    if init.get("memory_cgroup"):
        return 0
    size = _status_kb(os.getpid(), "VmSize") * 1024 + ((int(job["memory_mb"]) + SLACK_MB) << 20)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    except (ValueError, OSError):
        return 0
    return size


def _status_kb(pid: int, *keys: str) -> int:
    """The sum of fields of /proc/PID/status in kB (VmSize, VmPeak, RssAnon, ...); 0 when the process is gone."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name in keys:
                    total += int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return total


def _resident(pid: int) -> int:
    """Bytes of memory a process holds itself: anonymous and shared-memory pages in RAM (not the library code it
    maps from files, which the kernel can always drop); 0 when it is gone."""
    return _status_kb(pid, "RssAnon", "RssShmem") * 1024


# ------------------------------------------------------------------------------------------------------ a job
class _Child:
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
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if "got-frame" in event:
                self.phase = "program"
            elif "cell" in event and isinstance(event["cell"], int):
                self.cell, self.cell_started = event["cell"], time.monotonic()
            elif "address-limit" in event and isinstance(event["address-limit"], int):
                self.address_limit = event["address-limit"]
            elif "forking" in event and isinstance(event["forking"], int):
                self.first_fork = event["forking"] if self.first_fork is None else self.first_fork
            elif "forked" in event and isinstance(event["forked"], int):
                self.forking_cells.append(event["forked"])
            elif "visible" in event:
                self.visible[str(event["visible"])] = {"passed": bool(event.get("passed")),
                                                       "message": str(event.get("message", ""))}
            elif "program-done" in event:
                self.phase, self.cell, self.program_seconds = "checks", None, event.get("seconds")
            elif "result" in event and self.result is None and self.phase == "checks":
                self.result = event["result"]


def _fork(deadline: float) -> int:
    """``os.fork``, retried while the process limit is full (what a previous unit started is still dying)."""
    while True:
        try:
            return os.fork()
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _group_sizes() -> dict[int, int]:
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


class _Job:
    """Runs one submission's units (the worker's side: it never runs the student's code itself)."""

    def __init__(self, init: dict, job: dict, emit, audit: _Audit, guard: _Guard):
        self.init, self.job, self.emit, self.audit, self.guard = init, job, emit, audit, guard
        self.skip: set[int] = set()
        self.problems: dict[int, dict] = {}
        self.attempts: dict[str, int] = {}
        seen = init.setdefault("durations", {})  # seconds per unit in earlier jobs: the slowest start first
        self.pending = sorted(job["units"], key=lambda unit: -seen.get(unit, 0.0))
        self.running: dict[int, _Child] = {}
        self.deadline = time.monotonic() + float(job["timeout"])
        self.parallel = max(1, int(job.get("parallel", 1)))
        self.refused = event_count(init.get("pids_events"), "max")  # forks the process limit refused so far

    def run(self) -> None:
        while self.pending or self.running:
            while self.pending and len(self.running) < self.parallel and self._left() > 1:
                self._start(self.pending.pop(0))
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
                elif now > child.deadline:
                    self._kill(child, "time")
        for unit in self.pending:
            self.emit({"event": "unit", "unit": unit, "abandoned": True})
        self.emit({"event": "job-done", "problems": list(self.problems.values())})

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
        pid = _fork(self.deadline)
        if pid == 0:  # the unit's process
            code = 0
            try:
                os.setpgid(0, 0)
                os.close(read_fd)

                def send(event):
                    _write_all(write_fd, (json.dumps(event) + "\n").encode())

                _unit_process(self.init, job, unit, set(self.skip), send, self.audit, self.guard)
            except BaseException:  # noqa: BLE001 - our own failure: reported to the instructor, not the student
                import traceback

                with contextlib.suppress(OSError):
                    _write_all(write_fd, (json.dumps({"result": {"internal_error": traceback.format_exc()[-3000:]}})
                                          + "\n").encode())
                code = 70
            os._exit(code)
        os.close(write_fd)
        child = _Child(unit, pid, read_fd, limit, attempt)
        child.resident_at_start = _resident(pid)
        child.oom_before, child.pids_before, child.pids_mark = oom, pids, pids
        self.emit({"event": "frame", "unit": unit})  # the engine writes this unit's frame; the child reads it
        waited = time.monotonic()
        while child.phase == "frame" and time.monotonic() - waited < 60:
            ready, _, _ = select.select([read_fd], [], [], 1.0)
            if ready:
                data = os.read(read_fd, 1 << 16)
                if not data:
                    break
                child.feed(data)
        self.running[read_fd] = child
        if child.phase == "frame":
            self._kill(child, "time")

    def _forks(self, child: _Child) -> None:
        """A program cell that ran into the process limit is skipped for the units that start after it (it would
        hit the limit in each of them); the unit that owns it is reported as crashed."""
        cells, child.forking_cells = child.forking_cells, []
        count = event_count(self.init.get("pids_events"), "max")
        if cells and count > child.pids_mark:
            cell = next((c for c in self.job["program"] if c["pos"] == cells[0]), None)
            if cell is not None and cell["pos"] not in self.problems:
                self.problems[cell["pos"]] = {"pos": cell["pos"], "label": cell["label"], "kind": "crashed",
                                              "unit": cell["unit"], "message": f"{cell['label']} started more "
                                              "processes than allowed (the limit stopped it); it was skipped"}
                self.skip.add(cell["pos"])
        if cells:
            child.pids_mark = count

    def _watch_processes(self) -> None:
        """The process limit refused a fork: the unit whose process group holds the most processes is stopped at
        once (a fork bomb would race the limit for as long as it runs, and leave the other units without threads)."""
        count = event_count(self.init.get("pids_events"), "max")
        if count <= self.refused:
            return
        self.refused = count
        sizes = _group_sizes()
        child = max(self.running.values(), key=lambda c: sizes.get(c.pid, 0), default=None)
        if child is None or sizes.get(child.pid, 0) < 2:
            return
        if child.first_fork is not None:  # the cell that forked is to blame, even when the program has moved on
            if child.result is None:
                child.phase, child.cell = "program", child.first_fork
            else:
                child.forking_cells = [child.first_fork]
                child.pids_mark = -1
                self._forks(child)
        self._kill(child, "processes")

    def _watch_memory(self) -> None:
        """A unit's process holding more than its memory beyond what it shared with the worker when forked is
        stopped at once (``memory``), with or without a memory cgroup, before it can slow every unit down."""
        limit = int(self.job["memory_mb"]) << 20
        for child in list(self.running.values()):
            resident = _resident(child.pid)
            if not resident:
                continue
            child.peak = max(child.peak, resident - child.resident_at_start)
            if child.peak > limit:
                self._kill(child, "memory")

    def _kill(self, child: _Child, why: str) -> None:
        child.killed = why
        if why == "memory":
            child.memory_exhausted = True
        elif why in ("time", "hung"):  # still running: was it refused memory it kept asking for?
            peak = _status_kb(child.pid, "VmPeak") * 1024
            child.memory_exhausted = bool(child.address_limit and peak + NEAR_LIMIT >= child.address_limit)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        self._end(child)

    def _end(self, child: _Child) -> None:
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
            while _group_sizes().get(child.pid) and time.monotonic() < ends:
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
        event = {"event": "unit", "unit": child.unit, "seconds": seconds, "exit_code": exit_code,
                 "killed": child.killed, "out_of_memory": oom, "too_many_processes": forks, "phase": child.phase,
                 "limit": round(child.limit, 1), "visible": child.visible, "attempts": child.attempt + 1,
                 "program_seconds": child.program_seconds, "memory_exhausted": child.memory_exhausted,
                 "peak_mb": round(child.peak / 2**20), "memory_mb": int(self.job["memory_mb"])}
        if child.result is not None:
            event.update(child.result)
            self.init["durations"][child.unit] = seconds
        self.emit(event)

    def _skip_cell(self, child: _Child, exit_code: int, oom: bool) -> None:
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
            self.emit({"event": "unit", "unit": child.unit, "abandoned": True})


# ------------------------------------------------------------------------------------------------------ main
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

    def emit(event: dict) -> None:
        _write_all(out, (json.dumps(event) + "\n").encode())

    os.register_at_fork(after_in_child=lambda: os.close(out))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    started = time.monotonic()
    init = read_frame(0)
    if init is None:
        return 0
    audit = _Audit(init["protected"])
    sys.addaudithook(audit)
    with contextlib.suppress(OSError, AttributeError, ImportError):  # no other process may read this one's memory
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    sys.path.insert(0, init["root"])
    _preload(init)
    guard = _Guard()
    gc.collect()
    gc.freeze()  # the imported world is permanent: a unit's process never scans it (and never copies it)
    emit({"event": "ready", "seconds": round(time.monotonic() - started, 2)})
    while True:
        job = read_frame(0)
        if job is None:
            return 0
        job["dir"] = tempfile.mkdtemp(prefix="job-")
        try:
            _Job(init, job, emit, audit, guard).run()
        finally:
            _clean_up(init, job["dir"])


if __name__ == "__main__":
    sys.exit(main())
