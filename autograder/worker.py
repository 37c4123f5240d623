"""The grading process of one submission, run inside the sandbox by ``python -m autograder autograde``.

    python -m autograder.worker < frames

It never reads a course file: everything comes through stdin as length-prefixed JSON frames, a header and then one
frame per unit. The worker imports torch, pytest and the graders once, then grades each unit in a **fresh forked
process** that

* reads its own frame (and nothing else: stdin is closed before any student code runs): the reference notebook for
  this unit, where the unit's own solution cell is replaced by the released stub (so the answer is not in the
  process), the reference values of this unit only, and the student's cell;
* runs the student's cell on top of the reference's other definitions and the unit's pytest graders against it
  (:func:`autograder.runner.grade_unit`), with an audit hook and an integrity guard armed (see below);
* sends one JSON result to the worker through a pipe of its own and exits.

So a unit that hangs, crashes, exhausts memory or forks without end costs only that unit; the worker reports each
unit as one line on stdout (``{"event": "unit", ...}``) and ends with ``{"event": "done"}``.

Tamper sensors (in the unit's process): a snapshot of the graders', pytest's, torch's and the builtins' functions
is compared after the student's cell and after every check (a change is undone, recorded, and the unit scores
zero), and a Python audit hook (which Python code cannot remove) records opening course files, network use,
starting processes, memory introspection (``gc``, ``ctypes``) and new audit hooks.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import struct
import sys
import time
import types

SCRATCH = "/tmp"  # the sandbox's only writable folder
# the course and Python installation are mounted read-only, also where they live below SCRATCH
READ_ONLY = tuple(os.path.realpath(p) for p in (os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                               sys.prefix, sys.base_prefix))
CAP = 1 << 20  # bytes of a student's printed output that are kept; the rest is counted and dropped

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
    """Records what a student's code tries; armed only while student code or the checks run."""

    def __init__(self, protected: list[str]):
        self.armed = False
        self.protected = tuple(protected)
        self.tampered: list[str] = []
        self.notices: list[str] = []

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
            elif writing and (_below(path, READ_ONLY) or not (path.startswith(("/dev/null", "/proc/self/"))
                                                               or _below(path, (SCRATCH,)))):
                self._add(self.notices, f"tried to write {path} (outside its working directory: blocked)")
        elif event in TAMPER_EVENTS:
            self._add(self.tampered, TAMPER_EVENTS[event])
        elif event.startswith(NETWORK_EVENTS):
            self._add(self.notices, f"tried to use the network ({event}: blocked)")
        elif event.startswith(PROCESS_EVENTS):
            self._add(self.notices, f"started or signalled processes ({event})")

    @staticmethod
    def _add(where: list[str], text: str) -> None:
        if text not in where and len(where) < 20:
            where.append(text)


class _Guard:
    """Snapshot of the functions a check relies on; ``verify`` undoes every change and adds it to ``changed``."""

    MODULES = ("builtins", "math", "torch", "torch.nn", "torch.nn.functional", "numpy", "pytest", "_pytest.runner",
               "_pytest.python", "_pytest.reports", "_pytest.main", "_pytest.outcomes")

    def __init__(self):
        self.entries: list[tuple[object, str, object]] = []
        self.changed: list[str] = []
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

    def verify(self) -> None:
        for owner, key, value in self.entries:
            current = vars(owner).get(key, _MISSING) if key != "__code__" else getattr(owner, "__code__", None)
            if current is not value:
                label = f"{getattr(owner, '__name__', type(owner).__name__)}.{key}"
                if label not in self.changed:
                    self.changed.append(label)
                with contextlib.suppress(Exception):
                    setattr(owner, key, value)


_MISSING = object()


class _GuardPlugin:
    """pytest plugin: verifies the guard after every check; a changed grader fails that check."""

    def __init__(self, guard: _Guard):
        self.guard = guard

    def pytest_runtest_teardown(self, item):
        self.guard.verify()


def _grade_unit_in_child(audit: _Audit, result_fd: int) -> None:
    unit_pid = os.getpid()
    payload = read_frame(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nothing more to read; the student's C-level output goes nowhere
        os.dup2(devnull, fd)
    unit = payload["unit"]
    sink = _Sink()
    sys.stdout = sys.stderr = sink
    started = time.monotonic()

    from autograder import cases, units
    from autograder.runner import Result, grade_unit

    os.environ.update(NBGRADER_EXECUTION="autograde", DINO_MODE="tiny")
    units.QUIET_INTO = sink  # what the cell and the checks print is counted, whoever redirects it
    ref = units.load_reference(nb=_notebook(payload["reference"]), stub=unit)
    units.install_reference(ref)
    cases.install_values(payload["values"])
    names = units.own_cell_namespace(ref, unit)
    guard = _Guard()
    results: list[Result] = []
    memory_error = False
    cell = payload["cell"]
    audit.armed = True
    try:
        if cell is None:
            results = [Result("the unit's cell is in the notebook", False,
                              f"the notebook has no solution cell with grade_id {unit!r}: was it deleted, or its "
                              "metadata changed?")]
        else:
            try:
                with units.quiet():
                    exec(compile(cell, f"<your cell: {unit}>", "exec"), names)  # noqa: S102
            except BaseException as err:  # noqa: BLE001 - the student's cell failed; that is the result
                memory_error = isinstance(err, MemoryError)
                text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
                results = [Result("your cell runs", False, f"running your cell failed: {type(err).__name__}"
                                  f"{': ' + text if text else ''}")]
            guard.verify()
            if not results:
                _, results = grade_unit(unit, names, plugins=[_GuardPlugin(guard)])
    finally:
        audit.armed = False
    guard.verify()
    changed = guard.changed
    if changed:
        audit.tampered.append("changed the grader's functions: " + ", ".join(changed[:8]))
        results = [Result(r.name, False, "not scored: your code changed the grader while this check ran "
                          f"({', '.join(changed[:3])})", r.visible) for r in results]
    memory_error = memory_error or any("MemoryError" in r.message for r in results)
    if sink.count > CAP:
        audit.notices.append(f"printed {sink.count / 1e6:.1f} million characters (kept the first million)")
    out = {"results": [r.__dict__ for r in results], "tampered": audit.tampered, "notices": audit.notices,
           "printed": sink.count, "memory_error": memory_error, "seconds": round(time.monotonic() - started, 2)}
    if os.getpid() == unit_pid:  # a process the student's code forked must not answer for the unit
        _write_all(result_fd, json.dumps(out).encode())


def _notebook(nb_json: dict):
    import nbformat

    return nbformat.from_dict(nb_json)


def _run_unit(unit: str, timeout: float, audit: _Audit, emit) -> None:
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the unit's process
        code = 0
        try:
            os.setpgid(0, 0)
            os.close(read_fd)
            _grade_unit_in_child(audit, write_fd)
        except BaseException:  # noqa: BLE001 - our own failure: reported to the instructor, not the student
            import traceback

            with contextlib.suppress(OSError):  # (only from the unit's own process: forks of it exit silently)
                _write_all(write_fd, json.dumps({"internal_error": traceback.format_exc()[-3000:]}).encode())
            code = 70
        os._exit(code)
    os.close(write_fd)
    data, timed_out = bytearray(), False
    while True:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            data.extend(chunk)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the unit's process and whatever it started
    _, status = os.waitpid(pid, 0)
    os.close(read_fd)
    event = {"event": "unit", "unit": unit, "seconds": round(time.monotonic() - started, 2), "timed_out": timed_out,
             "exit_code": os.waitstatus_to_exitcode(status)}
    try:
        event.update(json.loads(data.decode()) if data else {})
    except ValueError:
        event["garbled"] = True
    emit(event)


def main() -> int:
    out = os.dup(1)
    os.set_inheritable(out, False)
    header = read_frame(0)
    audit = _Audit(header["protected"])
    sys.addaudithook(audit)

    def emit(event: dict) -> None:
        _write_all(out, (json.dumps(event) + "\n").encode())

    os.register_at_fork(after_in_child=lambda: os.close(out))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    import pytest  # noqa: F401 - import everything a unit needs once, before forking
    import timm  # noqa: F401
    import torch

    import autograder.runner  # noqa: F401
    import dinocourse.notebook  # noqa: F401

    torch.set_num_threads(max(1, int(header.get("threads", 1))))
    emit({"event": "ready"})
    for unit in header["units"]:
        _run_unit(unit, float(header["unit_timeout"]), audit, emit)
    emit({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
