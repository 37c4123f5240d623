"""The sandbox contains what a hostile submission does: time, memory, processes, network, files."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from autograder.sandbox import Limits, Sandbox, probe
from dinocourse import REPO_ROOT

ISOLATION = probe()
needs_bwrap = pytest.mark.skipif(not ISOLATION.bubblewrap, reason="bubblewrap is not installed (make sandbox)")
needs_cgroups = pytest.mark.skipif(not (ISOLATION.cgroup_memory and ISOLATION.cgroup_pids),
                                   reason="no writable memory and pids cgroups on this machine")


def run(code: str, hide=(), **limits):
    sandbox = Sandbox(hide=list(hide), limits=Limits(**{"timeout": 20, "memory_mb": 512, **limits}),
                      isolation=ISOLATION)
    return sandbox.run([sys.executable, "-c", code], env={"PATH": os.defpath, "PYTHONPATH": str(REPO_ROOT)})


def test_ci_machine_has_the_full_sandbox():
    """CI installs bubblewrap itself (make sandbox); there, nothing may be skipped silently."""
    if not os.environ.get("CI"):
        pytest.skip("only required in CI")
    assert ISOLATION.bubblewrap, ISOLATION.warnings


def test_output_and_exit_code_come_back():
    out = run("import sys; print('hello'); sys.exit(3)")
    assert (out.returncode, out.stdout, out.timed_out) == (3, b"hello\n", False)


def test_an_endless_loop_is_stopped_at_the_time_limit():
    out = run("while True: pass", timeout=2)
    assert out.timed_out and out.returncode != 0 and 2 <= out.elapsed < 10


def test_printing_without_end_keeps_only_the_cap():
    out = run("import sys\nfor _ in range(64): sys.stdout.write('x' * (1 << 20))", output_bytes=1 << 20)
    assert out.stdout_truncated and len(out.stdout) <= 1 << 20 and out.returncode == 0


@needs_cgroups
def test_a_memory_bomb_is_killed_and_reported():
    out = run("blocks = [bytearray(64 << 20) for _ in range(64)]", memory_mb=256)
    assert out.out_of_memory and out.returncode != 0


@needs_cgroups
def test_a_fork_bomb_stops_at_the_process_limit():
    out = run("import os, time\nfor _ in range(1000):\n    try:\n        os.fork()\n    except OSError:\n"
              "        break\ntime.sleep(0.5)", processes=32, timeout=10)
    assert out.too_many_processes and not out.timed_out


@needs_bwrap
def test_no_network():
    out = run("import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=3)\n    print('connected')\n"
              "except OSError as err:\n    print(type(err).__name__)")
    assert b"connected" not in out.stdout and out.stdout.strip()


@needs_bwrap
def test_files_outside_tmp_are_read_only_and_private_files_hidden():
    tmp_path = REPO_ROOT / "build" / "sandbox-test"  # not under /tmp: the sandbox has its own /tmp
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir(parents=True)
    secret = tmp_path / "solutions"
    secret.mkdir()
    (secret / "answer.txt").write_text("42")
    public = tmp_path / "public.txt"
    public.write_text("hello")
    code = (f"import pathlib\nprint(pathlib.Path({str(public)!r}).read_text())\n"
            f"print(pathlib.Path({str(secret)!r}, 'answer.txt').exists())\n"
            f"try:\n    open({str(tmp_path / 'new.txt')!r}, 'w')\nexcept OSError as err:\n    print(err.errno)\n"
            "import tempfile\nscratch = pathlib.Path(tempfile.gettempdir(), 'scratch')\n"
            "scratch.write_text('ok')\nprint(scratch.read_text())")
    out = run(code, hide=[secret])
    assert out.stdout.decode().split() == ["hello", "False", "30", "ok"], out.stderr_tail  # 30: EROFS
    assert not (tmp_path / "new.txt").exists() and (secret / "answer.txt").read_text() == "42"


@needs_bwrap
def test_other_processes_are_invisible():
    out = run("import os; print(len([p for p in os.listdir('/proc') if p.isdigit()]))")
    assert int(out.stdout) <= 3  # the sandbox's init, python, maybe its reaper


def test_without_bubblewrap_there_is_a_clear_warning():
    iso = probe(use_bubblewrap=False)
    assert iso.bubblewrap is None and any("resource limits only" in w for w in iso.warnings)
    out = Sandbox([], Limits(timeout=5), iso).run([sys.executable, "-c", "print(1)"])
    assert out.stdout == b"1\n"
