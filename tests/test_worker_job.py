"""The worker's scheduling of one submission's units (:class:`autograder.worker.job.Job`), with stand-ins for the
units' processes: what one unit's process does cannot hold up another unit's limits."""

from __future__ import annotations

import json
import subprocess
import sys

from autograder import COURSE_ROOT

# A job of two units, two at a time, 8 s for the submission. The first unit's process gets its frame and then hangs
# in its checks (its limit: 8 s); the second's frame is never handed over, so its process waits at the hand-over
# (which may take up to a minute) for as long as it lives. Runs in a process of its own: the job forks.
JOB = r"""
import json, os, time
from autograder.worker.job import Job
from autograder.worker.messages import frame, read_frame
from autograder.worker.sensors import Audit

read_end, write_end = os.pipe()
os.dup2(read_end, 0)  # the units' processes read their frames from the worker's stdin
started = time.monotonic()
log = []

def emit(event, **fields):
    log.append({"at": round(time.monotonic() - started, 2), "event": event, **{k: fields.get(k) for k in
                ("unit", "killed", "phase")}})
    if event == "frame" and fields["unit"] == "hangs":
        os.write(write_end, frame({"unit": "hangs"}))

def run_unit(init, job, unit, skip, send, audit, guard):
    read_frame(0)
    send("frame-read")
    send("program-done", seconds=0.0)
    time.sleep(3600)  # its checks never end

job = {"units": ["hangs", "never_handed_over"], "timeout": 8, "parallel": 2, "cell_seconds": 3600,
       "memory_mb": 4096, "program": []}
Job({"env": {}}, job, emit, Audit([]), None, {}, run_unit=run_unit).run()
print(json.dumps(log))
"""


def test_a_unit_waiting_for_its_frame_does_not_delay_another_units_deadline():
    done = subprocess.run([sys.executable, "-c", JOB], capture_output=True, text=True, timeout=300, cwd=COURSE_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    log = json.loads(done.stdout.strip().splitlines()[-1])
    ended = {entry["unit"]: entry for entry in log if entry["event"] == "unit"}
    assert set(ended) == {"hangs", "never_handed_over"}, log
    assert ended["hangs"]["killed"] == "time" and ended["hangs"]["phase"] == "checks", log
    # killed at its own 8 s limit (a busy machine may add seconds), not after the other unit's minute of hand-over
    assert ended["hangs"]["at"] < 30, log
    assert ended["never_handed_over"]["phase"] == "frame" and ended["never_handed_over"]["killed"] == "time", log
    assert log[-1]["event"] == "job-done" and log[-1]["at"] < 40, log
