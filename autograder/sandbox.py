"""Run untrusted code in its own process tree with a time limit, a memory limit and no way out.

Three layers, each used where the machine allows it (:func:`probe` says which are available, and
:attr:`Sandbox.warnings` what is missing):

* **bubblewrap** (``bwrap``, ``make sandbox`` installs it on Debian/Ubuntu): new user, pid, network, ipc and uts
  namespaces (no network at all, no other process visible), the whole file system read-only, a fresh ``/tmp``
  (tmpfs, size-limited) as the only writable place, the course's private files (solutions, submissions, grades,
  reference values, the git history) replaced by empty ones, all capabilities dropped;
* **cgroups** (v1 ``memory`` and ``pids`` controllers, when writable): a hard memory limit whose breach kills the
  submission (reported as ``memory``) and a cap on the number of processes and threads (a fork bomb stops there);
* **resource limits** (always): CPU seconds, file size, no core dumps, and, without cgroups, the address space
  (and the number of processes when not root).

The wall-clock limit is enforced by the caller's process, which kills the whole tree (process group and cgroup).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_V1 = Path("/sys/fs/cgroup")
REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


@dataclass
class Limits:
    timeout: float = 300.0        # seconds of wall-clock time
    memory_mb: int = 4096         # resident memory of the whole tree (cgroup), else address space (rlimit)
    processes: int = 128          # processes + threads of the tree (cgroup pids.max)
    tmp_mb: int = 512             # size of the writable /tmp
    output_bytes: int = 32 << 20  # what is kept of stdout; the rest is read and dropped


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


@dataclass
class Isolation:
    bubblewrap: str | None = None          # path of bwrap when it works here
    cgroup_memory: Path | None = None      # writable cgroup v1 hierarchies
    cgroup_pids: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [("bubblewrap (no network, read-only file system, private files hidden)" if self.bubblewrap
                  else "no file-system or network isolation"),
                 "cgroup memory limit" if self.cgroup_memory else "address-space limit (rlimit)",
                 "cgroup process limit" if self.cgroup_pids else
                 ("process limit (rlimit)" if os.geteuid() != 0 else "no process limit")]
        return ", ".join(parts)


def _bwrap_works(path: str) -> bool:
    try:
        done = subprocess.run([path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
                               "--die-with-parent", "--", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _writable_cgroup(controller: str) -> Path | None:
    base = CGROUP_V1 / controller
    if not (base / "cgroup.procs").exists():
        return None
    probe_dir = base / f"dino-probe-{os.getpid()}"
    try:
        probe_dir.mkdir()
        probe_dir.rmdir()
    except OSError:
        return None
    return base


def probe(use_bubblewrap: bool = True) -> Isolation:
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
    iso.cgroup_memory = _writable_cgroup("memory")
    iso.cgroup_pids = _writable_cgroup("pids")
    if not iso.cgroup_memory:
        iso.warnings.append("no writable memory cgroup: the memory limit is an address-space limit (a submission "
                            "over it gets MemoryError instead of being stopped)")
    if not iso.cgroup_pids and os.geteuid() == 0:
        iso.warnings.append("no writable pids cgroup and running as root: the number of processes is not limited "
                            "(a fork bomb is only stopped by the time limit)")
    return iso


class Sandbox:
    """Runs commands under the isolation of this machine (see the module's docstring)."""

    def __init__(self, hide: list[Path], limits: Limits, isolation: Isolation | None = None):
        self.hide = [Path(p).resolve() for p in hide]
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
        kept = [k for k in sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), REPO})
                if any(k.is_relative_to(c) for c in covered)]
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

    def _cgroups(self) -> list[Path]:
        made, name = [], f"dino-autograde-{os.getpid()}-{next(_counter)}"
        for base, files in ((self.isolation.cgroup_memory, {"memory.limit_in_bytes": self.limits.memory_mb << 20,
                                                             "memory.swappiness": 0}),
                            (self.isolation.cgroup_pids, {"pids.max": self.limits.processes})):
            if base is None:
                continue
            group = base / name
            group.mkdir()
            made.append(group)
            for key, value in files.items():
                with contextlib.suppress(OSError):
                    (group / key).write_text(str(value))
        return made

    def _preexec(self, groups: list[Path]):
        limits, rlimit_memory = self.limits, not self.isolation.cgroup_memory

        def setup():  # runs in the child, before exec
            for group in groups:
                (group / "cgroup.procs").write_text(str(os.getpid()))
            cpu = int(limits.timeout * (os.cpu_count() or 1)) + 10
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.tmp_mb << 20, limits.tmp_mb << 20))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if rlimit_memory:
                size = (limits.memory_mb + 2048) << 20  # address space: the libraries map ~2 GB they never touch
                resource.setrlimit(resource.RLIMIT_AS, (size, size))
            if not self.isolation.cgroup_pids and os.geteuid() != 0:
                resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

        return setup

    def run(self, argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> Outcome:
        """Run ``argv`` (inside the sandbox), feeding ``stdin``; returns what happened and what it printed."""
        full = (self._bwrap_argv() if self.isolation.bubblewrap else []) + list(argv)
        groups = self._cgroups()
        start = time.monotonic()
        proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, start_new_session=True, preexec_fn=self._preexec(groups))  # noqa: PLW1509
        out, err, truncated = bytearray(), bytearray(), [False]

        def read_out():
            for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
                if len(out) + len(chunk) <= self.limits.output_bytes:
                    out.extend(chunk)
                else:
                    truncated[0] = True

        def read_err():
            for chunk in iter(lambda: proc.stderr.read1(1 << 16), b""):
                err.extend(chunk)
                del err[:-8192]

        readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for reader in readers:
            reader.start()
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        timed_out = too_many = False
        while proc.poll() is None:
            if time.monotonic() - start > self.limits.timeout:
                timed_out = True
                break
            too_many = too_many or bool(self.isolation.cgroup_pids and _pids_limit_hit(groups))
            time.sleep(0.05)
        self._kill(proc, groups)  # on time-out, and whatever the finished process left running
        proc.wait()
        for reader in readers:
            reader.join(timeout=5)
        oom = _oom_killed(groups)
        for group in groups:
            _remove(group)
        return Outcome(returncode=proc.returncode, elapsed=time.monotonic() - start, stdout=bytes(out),
                       stderr_tail=bytes(err), timed_out=timed_out, out_of_memory=oom,
                       too_many_processes=too_many, stdout_truncated=truncated[0])

    @staticmethod
    def _kill(proc: subprocess.Popen, groups: list[Path]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for group in groups:  # whatever left the process group (setsid) is still in the cgroup
            for _ in range(100):
                pids = _procs(group)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)


def _procs(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _pids_limit_hit(groups: list[Path]) -> bool:
    for group in groups:
        events = group / "pids.events"
        if events.exists():
            with contextlib.suppress(OSError, ValueError):
                if int(events.read_text().split()[-1]) > 0:
                    return True
    return False


def _oom_killed(groups: list[Path]) -> bool:
    for group in groups:
        control = group / "memory.oom_control"
        if control.exists():
            with contextlib.suppress(OSError):
                for line in control.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
    return False


def _remove(group: Path) -> None:
    for _ in range(50):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
