"""The DINO course's Python package: the data layer, the sample builder, the notebook runner and the demo."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # the course's top folder (solutions/, data/, autograder/, ...)
