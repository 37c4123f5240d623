"""The student download of an assignment: ``python -m autograder kit ASSIGNMENT [--out build/kit]``.

Writes ``<out>/<course>-<assignment>/`` and the same as a ``.zip`` next to it::

    README.md            how to work on it: a laptop (venv + pip) or Colab
    pyproject.toml       installs the runtime package with the course's pinned packages (no grading tools)
    <package>/           the course's runtime package(s) the notebook imports (e.g. the data layer)
    data/                the data that ships with the course (the files of data/ under version control)
    <assignment>/<notebook>.ipynb   the released student notebook

It contains no solution, no grader, no reference value and no hidden test (``tests/test_kit.py`` audits it): the
notebook is the released one, the runtime packages are those the notebook imports (never the autograder), and the
data folder holds only what the course ships.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import tomllib
from pathlib import Path

from autograder.assignment.course import COURSE_ROOT, Assignment, source_of

# packages students do not need
INSTRUCTOR_ONLY = {"nbgrader", "pytest", "nbclient", "nbformat", "ruff", "submitit", "setuptools"}
MAX_DATA_BYTES = 20 << 20  # a data file larger than this is a download, not part of the kit


def runtime_packages(assignment: Assignment) -> list[str]:
    """The course's own packages that the released notebook imports (never the grading framework)."""
    found = []
    for cell in assignment.release["cells"]:
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(source_of(cell))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if (assignment.root / top / "__init__.py").is_file() and top != "autograder":
                    found.append(top)
    return sorted(set(found))


def data_files(root: Path) -> list[Path]:
    """The files of ``data/`` that the course ships: those under version control (else all, but large downloads)."""
    done = subprocess.run(["git", "ls-files", "data"], cwd=root, capture_output=True, text=True)
    if done.returncode == 0 and done.stdout.strip():
        files = [root / line for line in done.stdout.splitlines()]
    else:
        files = [p for p in (root / "data").rglob("*") if p.is_file()]
    return [p for p in files if p.is_file() and p.stat().st_size <= MAX_DATA_BYTES]


def pyproject(root: Path, name: str, packages: list[str]) -> str:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = [d for d in project["dependencies"] if d.split("=")[0].split("[")[0].strip() not in INSTRUCTOR_ONLY]
    lines = ['[build-system]', 'requires = ["setuptools>=68"]', 'build-backend = "setuptools.build_meta"', '',
             '[project]', f'name = "{name}"', f'version = "{project.get("version", "0.1.0")}"',
             f'requires-python = "{project.get("requires-python", ">=3.11")}"', 'dependencies = [',
             *(f'    "{d}",' for d in deps), ']', '', '[tool.setuptools]', f'packages = {packages!r}'.replace("'", '"')]
    return "\n".join(lines) + "\n"


README = """# {title}

Your copy of the assignment: the notebook `{notebook}`, the course's data sample and the small Python package
the notebook imports ({packages}). Work through the notebook top to bottom; run each test cell after its part.

## On a laptop (Linux or macOS, Python 3.11)

```bash
python3 -m venv .venv
.venv/bin/pip install -e .          # the pinned packages (PyTorch and friends, about 6 GB) and the course package
.venv/bin/jupyter lab {notebook}
```

The notebook picks a budget that fits your machine: a few minutes on a laptop without a GPU.

## On Google Colab

1. Upload `{zip_name}` to the Colab session (Files panel), then run in a cell:
   ```
   !unzip -q {zip_name} && pip install -q -e {folder} --no-deps && pip install -q {extra}
   ```
2. Runtime -> Restart session (so that Python finds the course package), then open `{folder}/{notebook}`
   (File -> Open notebook -> Upload) or run `%cd {folder}/{assignment}` and work in a notebook there.

Colab already has PyTorch; `--no-deps` keeps its version.

## Submitting

Submit `{notebook}` as your instructor tells you. Keep the test cells as they are: when your notebook is graded,
its code runs from the top in a fresh process, with the instructor's copies of the test cells.

Data: PathMNIST sample (CC BY 4.0; MedMNIST v2, Yang et al., Scientific Data 2023; source NCT-CRC-HE-100K,
Kather et al., PLOS Medicine 2019); see `data/`.
"""


def build(assignment: Assignment, out: Path) -> Path:
    """Write the kit folder and its zip; returns the zip's path."""
    course = tomllib.loads((assignment.root / "pyproject.toml").read_text())["project"]["name"]
    folder_name = f"{course}-{assignment.id}"
    folder = Path(out) / folder_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    packages = runtime_packages(assignment)
    for package in packages:
        source = assignment.root / package
        for path in sorted(source.rglob("*.py")):
            target = folder / path.relative_to(assignment.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    for path in data_files(assignment.root):
        target = folder / path.relative_to(assignment.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    notebook = folder / assignment.id / assignment.notebook
    notebook.parent.mkdir(parents=True)
    shutil.copy(assignment.release_path, notebook)
    (folder / "pyproject.toml").write_text(pyproject(assignment.root, f"{course}-student", packages))
    extra = " ".join(d for d in tomllib.loads((folder / "pyproject.toml").read_text())["project"]["dependencies"]
                     if d.split("=")[0] not in ("torch", "torchvision", "numpy", "matplotlib", "jupyter"))
    (folder / "README.md").write_text(README.format(
        title=f"{course}: assignment {assignment.id}", notebook=f"{assignment.id}/{assignment.notebook}",
        packages=", ".join(f"`{p}`" for p in packages) or "none", zip_name=f"{folder_name}.zip", folder=folder_name,
        assignment=assignment.id, extra=extra))
    archive = shutil.make_archive(str(Path(out) / folder_name), "zip", root_dir=out, base_dir=folder_name)
    return Path(archive)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder kit", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--out", type=Path, default=COURSE_ROOT / "build" / "kit", help="where to write it")
    parser.add_argument("--root", type=Path, default=COURSE_ROOT, help="the course's folder")
    args = parser.parse_args(argv)
    assignment = Assignment.load(args.assignment, args.root.resolve())
    archive = build(assignment, args.out)
    print(f"wrote {archive} and the folder {archive.with_suffix('')}")
    return 0
