"""The sandbox contains what a hostile submission does: time, memory, processes, network, files."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from autograder.sandbox.isolation import Limits, Sandbox, probe
from dinocourse import REPO_ROOT

ISOLATION = probe()
needs_bwrap = pytest.mark.skipif(not ISOLATION.bubblewrap, reason="bubblewrap is not installed (make sandbox)")
needs_cgroups = pytest.mark.skipif(not (ISOLATION.memory_cgroup and ISOLATION.pids_cgroup),
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


def test_sandboxes_start_safely_from_many_threads_at_once():
    """No preexec_fn: the sandbox starts processes through a small exec wrapper, safe from a pool of threads."""
    from concurrent.futures import ThreadPoolExecutor

    assert "preexec_fn=" not in (REPO_ROOT / "autograder" / "sandbox" / "isolation.py").read_text()
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: run(f"print({i} * {i})"), range(16)))
    assert [o.stdout for o in outs] == [f"{i * i}\n".encode() for i in range(16)]


def _fake_v2(tmp_path, own="/user.slice/session-1.scope"):
    root = tmp_path / "cgroup"
    ours = root / own.strip("/")
    parent = ours if ours == root else ours.parent
    ours.mkdir(parents=True)
    (parent / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (parent / "cgroup.procs").write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"24 1 0:21 / {tmp_path / 'elsewhere'} rw - tmpfs tmpfs rw\n"
                         f"25 1 0:22 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
    own_file = tmp_path / "self-cgroup"
    own_file.write_text(f"0::{own}\n")
    return root, parent, mountinfo, own_file


def test_cgroup_v2_groups_are_made_next_to_our_own_with_memory_and_process_limits(tmp_path):
    """On a fake v2 hierarchy: found from /proc/self/mountinfo and /proc/self/cgroup, limits written, counters read."""
    from autograder.sandbox.isolation import find_cgroups

    root, parent, mountinfo, own = _fake_v2(tmp_path)
    cgroups = find_cgroups(root=tmp_path / "no-v1", mountinfo=mountinfo, own=own)
    assert cgroups is not None and cgroups.version == 2 and cgroups.memory == parent == cgroups.pids
    group = cgroups.make(Limits(processes=64), memory_mb=300)
    folder = group.dirs[0]
    assert folder.parent == parent
    assert (folder / "memory.max").read_text() == str(300 << 20)
    assert (folder / "memory.swap.max").read_text() == "0" and (folder / "pids.max").read_text() == "64"
    assert group.procs == [folder / "cgroup.procs"]
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    (folder / "pids.events").write_text("max 5\n")
    assert group.count(group.oom_events, group.oom_key) == 2 and group.count(group.pids_events, "max") == 5


def test_cgroup_v2_controllers_are_asked_for_when_the_parent_lacks_them(tmp_path):
    """The kernel then lists them in cgroup.subtree_control (a fake hierarchy only shows that they were asked for)."""
    from autograder.sandbox.isolation import find_cgroups

    root, parent, mountinfo, own = _fake_v2(tmp_path)
    (parent / "cgroup.subtree_control").write_text("cpu\n")
    assert find_cgroups(root=tmp_path / "no-v1", mountinfo=mountinfo, own=own) is None
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_cgroup_v2_in_the_root_of_a_container_and_v1_when_v2_has_no_controllers(tmp_path):
    from autograder.sandbox.isolation import find_cgroups

    root, _, mountinfo, own = _fake_v2(tmp_path, own="/")
    (root / "cgroup.subtree_control").write_text("memory pids\n")
    assert find_cgroups(root=tmp_path / "no-v1", mountinfo=mountinfo, own=own).memory == root
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.subtree_control").chmod(0o444)
    v1 = tmp_path / "v1"
    for controller in ("memory", "pids"):
        (v1 / controller).mkdir(parents=True)
        (v1 / controller / "cgroup.procs").write_text("")
    found = find_cgroups(root=v1, mountinfo=mountinfo, own=own)
    if os.geteuid() != 0:  # root may write a read-only file: then v2 is taken, as it should be
        assert found.version == 1 and found.memory == v1 / "memory" and found.pids == v1 / "pids"
        group = found.make(Limits(processes=16), memory_mb=100)
        assert (group.dirs[0] / "memory.limit_in_bytes").read_text() == str(100 << 20)
        assert (group.dirs[1] / "pids.max").read_text() == "16"


def test_the_real_hierarchy_where_the_machine_has_one():
    """v1 here (hybrid mounts with no v2 controllers), v2 on most current distributions: whichever is found works."""
    if ISOLATION.cgroups is None:
        pytest.skip("no writable cgroups on this machine")
    group = ISOLATION.cgroups.make(Limits(processes=16), memory_mb=128)
    try:
        limit = "memory.max" if group.version == 2 else "memory.limit_in_bytes"
        assert (group.dirs[0] / limit).read_text().strip() == str(128 << 20)
    finally:
        group.remove()
    assert not any(d.exists() for d in group.dirs)
