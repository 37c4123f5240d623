"""Tamper sensors of a unit's process: where its prints go (:class:`Sink`), a Python audit hook that records what the
student's code tries (:class:`Audit`: course files, network, processes, memory introspection, new audit hooks), and a
snapshot of the functions a check relies on (:class:`Guard`), compared after every cell and every check."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import types

from autograder import COURSE_ROOT

SCRATCH = tempfile.gettempdir()  # the sandbox's only writable folder (/tmp there)
# the course and the Python installation are read-only, also where they live below SCRATCH
READ_ONLY = tuple(os.path.realpath(p) for p in (str(COURSE_ROOT), sys.prefix, sys.base_prefix))
CAP = 1 << 20            # characters of a student's printed output that are kept; the rest is counted and dropped
REPORTED = 100           # different attempts of each kind (tampering, notices) a unit's process reports; enough to
                         # name every private file of a course of several assignments
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


class Sink(io.TextIOBase):
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


def below(path: str, folders) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


class Audit:
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
            if below(path, self.protected):
                self._add(self.tampered, f"tried to open the course database {path}")
        elif event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writing = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR)
            if below(path, self.protected):
                self._add(self.tampered, f"tried to {'write' if writing else 'read'} the course file {path}")
            elif path.startswith(PRIVATE_MEMORY) or (path.startswith("/proc/") and path.endswith("/mem")):
                self._add(self.tampered, f"tried to read the grader's memory ({path})")
            elif writing and (below(path, READ_ONLY) or not (path.startswith(("/dev/null", "/proc/self/"))
                                                               or below(path, (SCRATCH,)))):
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
        if entry not in where and len(where) < REPORTED:
            where.append(entry)


_MISSING = object()


class Guard:
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


class GuardPlugin:
    """pytest plugin: checks the guard after every check; a changed grader makes the unit score zero."""

    def __init__(self, guard: Guard, audit: Audit):
        self.guard, self.audit = guard, audit

    def pytest_runtest_teardown(self, item):
        changed = self.guard.changes()
        if changed:
            self.audit.tampered.append([self.audit.owner, "changed the grader's functions while a check ran: "
                                        + ", ".join(changed[:8])])



def out_of_memory(text: str) -> bool:
    """Whether an error's text (type and message) says that an allocation failed."""
    return any(marker in text for marker in OUT_OF_MEMORY)
