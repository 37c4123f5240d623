"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""

from __future__ import annotations

import re
import tomllib

from dinocourse.data import REPO_ROOT as REPO


def pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def conda_pip_requirements():
    """The `- pip:` list of environment.yml (read without a YAML library: the file is plain and small)."""
    lines = (REPO / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = []
    for line in lines[start + 1:]:
        match = re.match(r"^\s+- (\S+)\s*$", line)
        if not match:
            break
        reqs.append(match.group(1))
    return reqs, lines


def test_environment_yml_pins_the_same_packages_as_pyproject():
    project = pyproject()["project"]
    expected = sorted(project["dependencies"] + project["optional-dependencies"]["dev"])
    reqs, _ = conda_pip_requirements()
    assert sorted(reqs) == expected


def test_torch_pair_is_pinned_exactly():
    deps = pyproject()["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
    assert all("==" in d for d in deps), "every runtime dependency is pinned"


def test_python_version_agrees():
    _, lines = conda_pip_requirements()
    conda_python = next(line.split("=")[-1] for line in lines if line.strip().startswith("- python="))
    assert conda_python == "3.11"
    assert pyproject()["project"]["requires-python"].startswith(">=3.11")
