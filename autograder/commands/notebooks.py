"""Run course notebooks headless and load their definitions, for the demo, the tests and the graders.

* :func:`execute` runs a notebook in a fresh kernel (as nbconvert/nbgrader do), with extra environment
  variables, and reports every cell that takes longer than a second.
* :func:`load_definitions` executes only the cells tagged ``setup`` and ``api`` (imports, configuration and
  the classes and functions of the assignment) into a fresh module, so that tests can use the notebook's own
  objects without training anything.
* :func:`save_figures` writes the PNG outputs of cells tagged ``figure-NAME`` to ``NAME.png``.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.runtime.definitions import environment


class NotebookError(RuntimeError):
    """A cell of a notebook failed; the message names the cell and the error."""


def _cell_title(nb, index: int) -> str:
    """The nearest markdown heading above a cell, to tell a person where in the notebook it is."""
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").strip()
    return "top"


class _LiveClient(NotebookClient):
    """A NotebookClient that also hands the printed lines of some cells to a callback as they arrive."""

    def __init__(self, nb, live_cells: set[int], on_line, **kwargs):
        super().__init__(nb, **kwargs)
        self._live_cells, self._on_line = live_cells, on_line

    def output(self, outs, msg, display_id, cell_index):
        if cell_index in self._live_cells and msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            for line in msg["content"]["text"].splitlines():
                if line.strip():
                    self._on_line(line)
        return super().output(outs, msg, display_id, cell_index)


def execute(path: Path, out: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: int = 1800, log=print, live_tags: Iterable[str] = ("train",),
            allow_errors: bool = False) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` in a fresh kernel and return it with its outputs.

    ``env`` is added to the kernel's environment, ``cwd`` is its working directory (default: the notebook's
    folder), ``out`` (if given) receives the executed notebook even when a cell fails. ``log`` (if given) gets a
    line for every cell that took a second or more, and the printed lines of cells tagged with ``live_tags`` as
    they come. A failing cell raises :class:`NotebookError` naming the cell, unless ``allow_errors`` (then every
    cell runs and errors stay in the outputs, as when nbgrader autogrades).
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    cwd = Path(cwd) if cwd is not None else path.parent
    cwd.mkdir(parents=True, exist_ok=True)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    started: dict[int, float] = {}

    def on_start(cell, cell_index, **_):
        started[cell_index] = time.perf_counter()

    def on_done(cell, cell_index, **_):
        seconds = time.perf_counter() - started.get(cell_index, time.perf_counter())
        if seconds >= 1.0 and log is not None:
            n = code_cells.index(cell_index) + 1
            log(f"  cell {n:>2}/{len(code_cells)} ({_cell_title(nb, cell_index)}): {seconds:.1f} s")

    live = {i for i, c in enumerate(nb.cells) if set(live_tags) & set(c.metadata.get("tags", []))}
    client = _LiveClient(nb, live if log is not None else set(), lambda line: log(f"    {line}"),
                         kernel_name="python3", timeout=timeout, allow_errors=allow_errors,
                         resources={"metadata": {"path": str(cwd)}},
                         on_cell_execute=on_start, on_cell_executed=on_done)
    try:
        with environment(env):
            # the kernel process's own stderr carries only start-up chatter; cell output arrives via messages
            client.execute(stderr=subprocess.DEVNULL)
    except CellExecutionError as err:
        failed = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error"
                                                                 for o in c.get("outputs", []))), None)
        where = (f"code cell {code_cells.index(failed) + 1}/{len(code_cells)} ({_cell_title(nb, failed)})"
                 if failed is not None else "a cell")
        raise NotebookError(f"{path}: {where} failed:\n{err}") from err
    except (RuntimeError, TimeoutError) as err:  # the kernel did not start, or a cell ran past the timeout
        raise NotebookError(f"{path}: could not be executed: {err}") from err
    finally:
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out)
    return nb


def save_figures(nb: nbformat.NotebookNode, folder: Path) -> list[Path]:
    """Write the first PNG output of every cell tagged ``figure-NAME`` to ``folder/NAME.png``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for cell in nb.cells:
        names = [t[len("figure-"):] for t in cell.metadata.get("tags", []) if t.startswith("figure-")]
        pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if names and pngs:
            target = folder / f"{names[0]}.png"
            target.write_bytes(base64.b64decode(pngs[0]))
            written.append(target)
    return written
