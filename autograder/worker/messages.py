"""The worker's channels, one message style on each: the engine writes length-prefixed JSON *frames* to the worker's
stdin (the init frame, one job frame per submission, one unit frame per unit's process when asked for); every other
message is one JSON object per line with an ``"event"`` key (worker to engine: ``ready``, ``frame``, ``unit``,
``job-done``; a unit's process to the worker: see :mod:`autograder.worker.unit`)."""

from __future__ import annotations

import json
import os
import struct

MESSAGE_CAP = 4000       # characters of one message that leave the process


def read_frame(fd: int):
    """One length-prefixed JSON frame from ``fd`` (None at the end of the stream)."""
    head = read_exactly(fd, 8)
    if len(head) < 8:
        return None
    return json.loads(read_exactly(fd, struct.unpack(">Q", head)[0]))


def read_exactly(fd: int, n: int) -> bytes:
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


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def cap(text: str) -> str:
    return text if len(text) <= MESSAGE_CAP else text[:MESSAGE_CAP] + " ..."



def line(event: str, **fields) -> bytes:
    """One message of a line channel: ``{"event": event, **fields}`` and a newline."""
    return (json.dumps({"event": event, **fields}) + "\n").encode()


def lines(buffer: bytes) -> tuple[list[dict], bytes]:
    """The complete messages in ``buffer`` (what is not JSON, or has no event, is dropped) and what is left of it."""
    *complete, rest = buffer.split(b"\n")
    messages = []
    for text in complete:
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if isinstance(message, dict) and isinstance(message.get("event"), str):
            messages.append(message)
    return messages, rest
