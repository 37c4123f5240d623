"""Run untrusted code in its own process tree with a memory limit, a process limit and no way out.

Three layers, each used where the machine allows it (:func:`probe` says which are available, and
:attr:`Isolation.warnings` what is missing):

* **bubblewrap** (``bwrap``, ``make sandbox`` installs it on Debian/Ubuntu): new user, pid, network, ipc and uts
  namespaces (no network at all, no other process visible), the whole file system read-only, a fresh ``/tmp``
  (tmpfs, size-limited) as the only writable place, the course's private files (solutions, submissions, grades,
  reference values, the git history) replaced by empty ones, all capabilities dropped;
* **cgroups**, version 2 (``memory.max``, ``pids.max``) or version 1 (the ``memory`` and ``pids`` controllers),
  when writable: a hard memory limit whose breach kills a process (reported as ``memory``) and a cap on the number
  of processes and threads (a fork bomb stops there);
* **resource limits** (always): file size, no core dumps; CPU seconds and, without a memory cgroup, the address
  space are set per graded unit by the worker; without a pids cgroup (and not root) the number of processes.

Processes start through :mod:`autograder.sandbox.confine` (joins the cgroups, sets the limits, then ``exec``), never
through a ``preexec_fn``, so starting them from a pool of threads is safe. The wall-clock limits are enforced by the
caller, which kills the whole tree (process group and cgroup).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder import COURSE_ROOT

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONFINE = Path(__file__).with_name("confine.py")
_counter = itertools.count()



def event_count(path: str | Path | None, key: str) -> int:
    """A counter of a cgroup events file (``oom_kill`` of memory.events/oom_control, ``max`` of pids.events); 0 when
    there is no such file or counter."""
    if not path:
        return 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0

@dataclass
class Limits:
    timeout: float = 300.0        # seconds of wall-clock time for one submission
    memory_mb: int = 4096         # resident memory of a graded unit (cgroup), else its address space (rlimit)
    cell_seconds: float = 60.0    # one cell of a student's program (and at most a share of the timeout, see engine)
    processes: int = 128          # processes + threads of a sandbox (cgroup pids.max)
    tmp_mb: int = 512             # size of the writable /tmp
    output_bytes: int = 32 << 20  # what is kept of stdout; the rest is read and dropped


# ---------------------------------------------------------------------------------------------------- cgroups
@dataclass
class Group:
    """One cgroup made for a sandbox (one directory in v2, one per controller in v1)."""

    version: int
    dirs: list[Path]
    oom_events: Path | None = None   # file with the count of processes killed for memory
    oom_key: str = "oom_kill"
    pids_events: Path | None = None  # file with the count of refused forks ("max")

    @property
    def procs(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> list[int]:
        found = set()
        for procs in self.procs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in procs.read_text().split())
        return sorted(found)

    def count(self, path: Path | None, key: str) -> int:
        return event_count(path, key)

    def kill(self) -> None:
        """Kill every process in the group, also those that left the process group (setsid)."""
        kill_file = self.dirs[0] / "cgroup.kill" if self.version == 2 else None
        if kill_file is not None and kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        for _ in range(100):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        for folder in self.dirs:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if not (folder / "cgroup.procs").exists() or any(p.is_dir() for p in folder.iterdir()):
                        break  # not a cgroup (a test's stand-in) or not ours to empty
                    time.sleep(0.05)


@dataclass
class Cgroups:
    """Where this machine lets us make cgroups with a memory and a pids controller."""

    version: int
    memory: Path | None = None  # v1: the memory hierarchy; v2: the parent of our groups (both controllers)
    pids: Path | None = None    # v1: the pids hierarchy; v2: the same folder as ``memory``

    def make(self, limits: Limits, memory_mb: int) -> Group:
        name = f"dino-grade-{os.getpid()}-{next(_counter)}"
        if self.version == 2:
            folder = self.memory / name
            folder.mkdir()
            for key, value in (("memory.max", memory_mb << 20), ("memory.swap.max", 0),
                               ("pids.max", limits.processes)):
                with contextlib.suppress(OSError):
                    (folder / key).write_text(str(value))
            return Group(2, [folder], folder / "memory.events", "oom_kill", folder / "pids.events")
        group = Group(1, [])
        for base, files in ((self.memory, {"memory.limit_in_bytes": memory_mb << 20, "memory.swappiness": 0}),
                            (self.pids, {"pids.max": limits.processes})):
            if base is None:
                continue
            folder = base / name
            folder.mkdir()
            group.dirs.append(folder)
            for key, value in files.items():
                with contextlib.suppress(OSError):
                    (folder / key).write_text(str(value))
            if base == self.memory:
                group.oom_events, group.oom_key = folder / "memory.oom_control", "oom_kill"
            else:
                group.pids_events = folder / "pids.events"
        return group


def _writable(folder: Path) -> bool:
    probe_dir = folder / f"dino-probe-{os.getpid()}"
    try:
        probe_dir.mkdir()
        probe_dir.rmdir()
    except OSError:
        return False
    return True


def _cgroup2_mount(mountinfo: Path) -> Path | None:
    with contextlib.suppress(OSError):
        for line in mountinfo.read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return Path(left.split()[4])
    return None


def find_cgroups(root: Path = CGROUP_ROOT, mountinfo: Path = Path("/proc/self/mountinfo"),
                 own: Path = Path("/proc/self/cgroup")) -> Cgroups | None:
    """Version 2 when its memory and pids controllers can be used next to our own cgroup, else version 1.

    In v2 a cgroup with processes cannot hand controllers to children, so our groups are made as siblings of the
    cgroup we run in (or below the root, when we run in the root, as in most containers).
    """
    mount = _cgroup2_mount(mountinfo)
    if mount is not None:
        path = "/"
        with contextlib.suppress(OSError):
            path = next((line[3:] for line in own.read_text().splitlines() if line.startswith("0::")), "/")
        ours = mount / path.strip("/") if path.strip("/") else mount
        base = ours if ours == mount else ours.parent
        control = base / "cgroup.subtree_control"
        with contextlib.suppress(OSError):
            enabled = control.read_text().split()
            if not {"memory", "pids"} <= set(enabled):
                control.write_text("+memory +pids")
        with contextlib.suppress(OSError):
            if {"memory", "pids"} <= set(control.read_text().split()) and _writable(base):
                return Cgroups(2, base, base)
    memory, pids = root / "memory", root / "pids"
    found = Cgroups(1, memory if (memory / "cgroup.procs").exists() and _writable(memory) else None,
                    pids if (pids / "cgroup.procs").exists() and _writable(pids) else None)
    return found if found.memory or found.pids else None


# ---------------------------------------------------------------------------------------------------- isolation
@dataclass
class Isolation:
    bubblewrap: str | None = None      # path of bwrap when it works here
    cgroups: Cgroups | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def memory_cgroup(self) -> bool:
        return bool(self.cgroups and self.cgroups.memory)

    @property
    def pids_cgroup(self) -> bool:
        return bool(self.cgroups and self.cgroups.pids)

    def describe(self) -> str:
        version = f"cgroup v{self.cgroups.version}" if self.cgroups else ""
        parts = [("bubblewrap (no network, read-only file system, private files hidden)" if self.bubblewrap
                  else "no file-system or network isolation"),
                 f"{version} memory limit" if self.memory_cgroup else "address-space limit (rlimit)",
                 f"{version} process limit" if self.pids_cgroup else
                 ("process limit (rlimit)" if os.geteuid() != 0 else "no process limit")]
        return ", ".join(parts)


def _bwrap_works(path: str) -> bool:
    try:
        done = subprocess.run([path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
                               "--die-with-parent", "--", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def probe(use_bubblewrap: bool = True, cgroups: Cgroups | None | bool = True) -> Isolation:
    """What this machine offers; every missing layer adds a warning that says what is not contained."""
    iso = Isolation()
    bwrap = shutil.which("bwrap") if use_bubblewrap else None
    if bwrap and _bwrap_works(bwrap):
        iso.bubblewrap = bwrap
    elif use_bubblewrap:
        iso.warnings.append("bubblewrap is not available (install it with `make sandbox`): submissions run with "
                            "resource limits only, and can read your files, write where you can and use the network")
    else:
        iso.warnings.append("sandbox disabled (--no-sandbox): submissions run with resource limits only")
    iso.cgroups = find_cgroups() if cgroups is True else (cgroups or None)
    if not iso.memory_cgroup:
        iso.warnings.append("no writable memory cgroup (v1 or v2): the memory limit is an address-space limit (a "
                            "submission over it gets MemoryError instead of being stopped)")
    if not iso.pids_cgroup and os.geteuid() == 0:
        iso.warnings.append("no writable pids cgroup and running as root: the number of processes is not limited "
                            "(a fork bomb is only stopped by the time limit)")
    return iso


# ---------------------------------------------------------------------------------------------------- processes
@dataclass
class Outcome:
    returncode: int | None
    elapsed: float
    stdout: bytes
    stderr_tail: bytes
    timed_out: bool = False
    out_of_memory: bool = False
    too_many_processes: bool = False
    stdout_truncated: bool = False


class Confined:
    """A process started in the sandbox, read line by line (stdout) while it runs."""

    def __init__(self, popen: subprocess.Popen, group: Group | None, limits: Limits, stream: bool = True):
        self.popen, self.group, self.limits, self.stream = popen, group, limits, stream
        self.started = time.monotonic()
        self.lines: queue.Queue = queue.Queue()
        self.stdout = bytearray()
        self.truncated = False
        self.stderr = bytearray()
        self.oom_before = group.count(group.oom_events, group.oom_key) if group else 0
        self.pids_before = group.count(group.pids_events, "max") if group else 0
        self._readers = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_out(self):
        """Keep the first ``output_bytes`` of the output, and hand over every line (a line longer than that is
        dropped), so a process that runs for hours is read as long as it runs."""
        pending = b""
        for chunk in iter(lambda: self.popen.stdout.read1(1 << 16), b""):
            if len(self.stdout) + len(chunk) <= self.limits.output_bytes:
                self.stdout.extend(chunk)
            else:
                self.truncated = True
            if not self.stream:
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self.lines.put(line)
            if len(pending) > self.limits.output_bytes:
                pending, self.truncated = b"", True
        self.lines.put(None)  # the end of the output

    def _read_err(self):
        for chunk in iter(lambda: self.popen.stderr.read1(1 << 16), b""):
            self.stderr.extend(chunk)
            del self.stderr[:-8192]

    def write(self, data: bytes) -> bool:
        try:
            self.popen.stdin.write(data)
            self.popen.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def next_line(self, timeout: float) -> bytes | None:
        """The next line of output; None at the end of the output; raises ``queue.Empty`` after ``timeout``."""
        return self.lines.get(timeout=max(0.0, timeout))

    def alive(self) -> bool:
        return self.popen.poll() is None

    def out_of_memory(self) -> bool:
        return bool(self.group and self.group.count(self.group.oom_events, self.group.oom_key) > self.oom_before)

    def too_many_processes(self) -> bool:
        return bool(self.group and self.group.count(self.group.pids_events, "max") > self.pids_before)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self.group:
            self.group.kill()  # whatever left the process group (setsid) is still in the cgroup
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=5)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.popen.stdin.close()
        self.kill()
        if self.group:
            self.group.remove()


class Sandbox:
    """Starts commands under the isolation of this machine (see the module's docstring)."""

    def __init__(self, hide: list[Path], limits: Limits, isolation: Isolation | None = None, keep: list[Path] = ()):
        self.hide = [Path(p).resolve() for p in hide]
        self.keep = [Path(p).resolve() for p in keep]  # folders the code needs even below /tmp or the home
        self.limits = limits
        self.isolation = isolation or probe()

    @property
    def warnings(self) -> list[str]:
        return self.isolation.warnings

    def _bwrap_argv(self) -> list[str]:
        argv = [self.isolation.bubblewrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                "--size", str(self.limits.tmp_mb << 20), "--tmpfs", "/tmp"]
        home = Path.home().resolve()
        covered = [Path("/tmp")]
        if home != Path("/") and home.is_dir():  # the home directory is private too
            argv += ["--tmpfs", str(home)]
            covered.append(home)
        # what the code runs from comes back (read-only) where /tmp or the home directory covered it
        kept = [k for k in sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), COURSE_ROOT,
                                   *self.keep}) if any(k.is_relative_to(c) for c in covered)]
        for keep in kept:
            argv += ["--ro-bind", str(keep), str(keep)]
        for path in self.hide:  # last, so that nothing mounted above uncovers them
            if any(path.is_relative_to(c) for c in covered) and not any(path.is_relative_to(k) for k in kept):
                continue  # already out of sight
            if path.is_dir():
                argv += ["--tmpfs", str(path)]
            elif path.exists():
                argv += ["--ro-bind", "/dev/null", str(path)]
        return argv + ["--unshare-all", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
                       "--chdir", "/tmp", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--"]

    def _confine_argv(self, group: Group | None) -> list[str]:
        argv = [sys.executable, "-S", "-E", str(CONFINE)]
        for procs in group.procs if group else []:
            argv += ["--procs", str(procs)]
        argv += ["--limit", "CORE=0", "--limit", f"FSIZE={self.limits.tmp_mb << 20}"]
        if not self.isolation.pids_cgroup and os.geteuid() != 0:
            mine = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owned(p))
            argv += ["--limit", f"NPROC={mine + self.limits.processes}"]
        return argv + ["--"]

    def start(self, argv: list[str], env: dict[str, str] | None = None, memory_mb: int | None = None,
              stream: bool = True) -> Confined:
        """Start ``argv`` in the sandbox (its own cgroup with ``memory_mb``, default the limit's); with ``stream``
        its output is handed over line by line while it runs (:meth:`Confined.next_line`)."""
        cgroups = self.isolation.cgroups
        group = cgroups.make(self.limits, memory_mb or self.limits.memory_mb) if cgroups else None
        full = self._confine_argv(group) + (self._bwrap_argv() if self.isolation.bubblewrap else []) + list(argv)
        try:
            popen = _spawn(full, env)
        except OSError:
            if group:
                group.remove()
            raise
        return Confined(popen, group, self.limits, stream)

    def run(self, argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> Outcome:
        """Run ``argv`` to its end (or the time limit), feeding ``stdin``; returns what happened and what it printed."""
        process = self.start(argv, env, stream=False)
        process.write(stdin)
        with contextlib.suppress(OSError, ValueError):
            process.popen.stdin.close()
        timed_out = too_many = False
        while process.alive():
            if time.monotonic() - process.started > self.limits.timeout:
                timed_out = True
                break
            too_many = too_many or process.too_many_processes()
            time.sleep(0.05)
        process.kill()
        too_many, oom = too_many or process.too_many_processes(), process.out_of_memory()
        process.close()
        return Outcome(returncode=process.popen.returncode, elapsed=time.monotonic() - process.started,
                       stdout=bytes(process.stdout), stderr_tail=bytes(process.stderr), timed_out=timed_out,
                       out_of_memory=oom, too_many_processes=too_many, stdout_truncated=process.truncated)

    def cgroup_files(self, process: Confined) -> dict:
        """Where a process in the sandbox reads its own counters (memory kills, refused forks)."""
        group = process.group
        return {"oom_events": str(group.oom_events) if group and group.oom_events else None,
                "oom_key": group.oom_key if group else "oom_kill",
                "pids_events": str(group.pids_events) if group and group.pids_events else None,
                "memory_cgroup": self.isolation.memory_cgroup}


_requests: queue.Queue = queue.Queue()
_spawner: list[threading.Thread] = []
_spawner_lock = threading.Lock()


def _spawn(argv: list[str], env: dict[str, str] | None) -> subprocess.Popen:
    """Start a process from one long-lived thread.

    bubblewrap's --die-with-parent kills the sandbox when the *thread* that started it ends (Linux's parent-death
    signal follows the thread), so no sandbox may be started from a short-lived thread (a slot starting in the
    background, a pool's worker). The spawner thread lives as long as the program.
    """
    with _spawner_lock:
        if not _spawner:
            def serve():
                while True:
                    request = _requests.get()
                    try:
                        request["popen"] = subprocess.Popen(
                            request["argv"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=request["env"], start_new_session=True)
                    except OSError as err:
                        request["error"] = err
                    request["done"].set()

            _spawner.append(threading.Thread(target=serve, name="sandbox-spawner", daemon=True))
            _spawner[0].start()
    request = {"argv": argv, "env": env, "done": threading.Event()}
    _requests.put(request)
    request["done"].wait()
    if "error" in request:
        raise request["error"]
    return request["popen"]


def _owned(proc: Path) -> bool:
    with contextlib.suppress(OSError):
        return proc.stat().st_uid == os.geteuid()
    return False

