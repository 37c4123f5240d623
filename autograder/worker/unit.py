"""A unit's process (forked by :class:`autograder.worker.job.Job` from the warm worker): it reads its frame, runs the
student's program as a kernel would, then the unit's graders, and tells the worker what happens as it happens, one
line message at a time (:func:`autograder.worker.messages.line`): ``frame-read``, ``address-limit``, ``cell``,
``forking``, ``forked``, ``visible``, ``program-done``, ``result``."""

from __future__ import annotations

import contextlib
import os
import sys
import time

from autograder.worker.kernel import fresh_main, python_source
from autograder.worker.messages import cap, read_frame
from autograder.worker.sensors import CAP, Audit, Guard, GuardPlugin, Sink, out_of_memory

SLACK_MB = 512           # address space beyond a unit's memory: thread stacks and allocator arenas it never fills


def unit_process(init: dict, job: dict, unit: str, skip: set, send, audit: Audit, guard: Guard) -> None:
    """Grade ``unit`` of the job's program (in a process of its own); ``send(event, **fields)`` tells the worker."""
    payload = read_frame(0)
    send("frame-read")
    sink = _settle(init, job, unit, send)
    started = time.monotonic()
    names, cell_errors, memory_error = _run_program(job, unit, skip, send, audit, guard)
    send("program-done", seconds=round(time.monotonic() - started, 2))
    results = _run_checks(init, unit, payload, names, audit, guard)
    del payload
    if sink.count > CAP:
        audit.notices.append([None, f"printed {sink.count / 1e6:.1f} million characters (kept the first million)"])
    memory_error = memory_error or any(out_of_memory(r.message) for r in results)
    send("result", result={"results": [{**r.__dict__, "message": cap(r.message)} for r in results],
                           "cell_errors": cell_errors, "tampered": audit.tampered, "notices": audit.notices,
                           "memory_error": memory_error, "printed": sink.count,
                           "seconds": round(time.monotonic() - started, 2)})


def _settle(init: dict, job: dict, unit: str, send) -> Sink:
    """Cut the process off (no stdin, output to nowhere), limit it, and enter its grading environment and folder;
    returns where its prints go."""
    from autograder.runtime import definitions

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nothing more to read; the student's C-level output goes nowhere
        os.dup2(devnull, fd)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")  # when memory runs out, this process goes first, never the worker
    address_limit = limit_self(job, init)
    if address_limit:
        send("address-limit", bytes=address_limit)
    sink = Sink()
    sys.stdout = sys.stderr = sink
    definitions.QUIET_INTO[:] = [sink]  # what the cell and the checks print is counted, whoever redirects it
    os.environ.update(init["env"])
    workdir = os.path.join(job["dir"], unit)
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    import torch

    torch.set_num_threads(max(1, int(job.get("threads", 1))))
    return sink


def _run_program(job: dict, unit: str, skip: set, send, audit: Audit, guard: Guard) -> tuple[dict, list, bool]:
    """Run the student's program from the top, as a kernel would ("Run all"), with the unit's visible test cell at
    its place; returns the namespace, the errors of its cells and whether the unit's own code ran out of memory."""
    from autograder.runtime import definitions
    from autograder.runtime.runner import describe_exception, register_source

    me = os.getpid()
    names = fresh_main()
    cell_errors, memory_error = [], False
    for cell in job["program"]:
        if cell["pos"] in skip or (cell["kind"] == "visible" and cell["unit"] != unit):
            continue
        send("cell", pos=cell["pos"])
        audit.owner = cell["unit"] if cell["kind"] in ("unit", "visible") else None
        filename = f"<{cell['label']}>"
        register_source(filename, cell["source"])
        error = None
        audit.forked = False
        audit.tell = lambda pos=cell["pos"]: send("forking", pos=pos)
        audit.armed = True
        try:
            with definitions.quiet():
                exec(compile(python_source(cell["source"]), filename, "exec"), names)  # noqa: S102
        except BaseException as err:  # noqa: BLE001 - a failing cell is reported, and the program runs on
            error = err
        finally:
            audit.armed = False
            audit.tell = None
        if os.getpid() != me:  # a process the student's code forked never runs the grader's code
            os._exit(0)
        if audit.forked:
            send("forked", pos=cell["pos"])
        changed = guard.changes()
        if changed:
            audit.tampered.append([audit.owner, "changed the grader's functions: " + ", ".join(changed[:8])])
        message = describe_exception(error, error.__traceback__) if error is not None else ""
        exhausted = error is not None and out_of_memory(f"{type(error).__name__}: {error}")
        memory_error = memory_error or exhausted and audit.owner == unit
        if cell["kind"] == "visible":
            send("visible", grade_id=cell["grade_id"], passed=error is None, message=cap(message))
        elif error is not None:
            cell_errors.append({"pos": cell["pos"], "label": cell["label"], "unit": cell["unit"],
                                "message": cap(message), "memory": exhausted})
    return names, cell_errors, memory_error


def _run_checks(init: dict, unit: str, payload: dict, names: dict, audit: Audit, guard: Guard) -> list:
    """Load the reference definitions (the unit's own cell is the released stub) and run the unit's graders."""
    import torch

    from autograder.runtime import definitions
    from autograder.runtime.runner import grade_unit

    audit.owner = unit
    results = []
    with torch.random.fork_rng(devices=[]):
        ref = definitions.Definitions(payload["reference"], init["units"], dict(os.environ), stub=unit,
                                      label=f"unit_{unit}")
    definitions.install_reference(init["assignment"], ref)
    values = payload["values"]
    payload.clear()  # the reference notebook's sources are not needed any more
    audit.armed = True
    try:
        results = grade_unit(unit, names, reference=ref, graders=init["graders"], part=init["units"][unit],
                             values=values, plugins=[GuardPlugin(guard, audit)])
    finally:
        audit.armed = False
    changed = guard.changes()
    if changed:
        audit.tampered.append([unit, "changed the grader's functions: " + ", ".join(changed[:8])])
    return results


def limit_self(job: dict, init: dict) -> int:
    """Resource limits of a unit's process: CPU seconds, and, where no memory cgroup is, the address space (what
    the process already maps, inherited from the worker, plus the unit's memory); returns that limit (0: none)."""
    import resource

    cpu = int(job["unit_seconds"] * max(1, int(job.get("threads", 1)))) + 30
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    if init.get("memory_cgroup"):
        return 0
    size = status_kb(os.getpid(), "VmSize") * 1024 + ((int(job["memory_mb"]) + SLACK_MB) << 20)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    except (ValueError, OSError):
        return 0
    return size


def status_kb(pid: int, *keys: str) -> int:
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


def resident(pid: int) -> int:
    """Bytes of memory a process holds itself: anonymous and shared-memory pages in RAM (not the library code it
    maps from files, which the kernel can always drop); 0 when it is gone."""
    return status_kb(pid, "RssAnon", "RssShmem") * 1024

