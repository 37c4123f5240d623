"""What a kernel gives a student's program while it is graded: ``get_ipython()`` and ``display()`` in a fresh
``__main__``, and IPython syntax turned into Python."""

from __future__ import annotations

import sys
import types


class Shell:
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


def python_source(source: str) -> str:
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


def fresh_main() -> dict:
    """The namespace of a fresh kernel: a module called __main__ with display() and get_ipython()."""
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    names = module.__dict__
    names["display"] = lambda *args, **kwargs: None
    names["get_ipython"] = lambda: shell
    shell = Shell(names)
    return names

