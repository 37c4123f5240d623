"""The DINO course's runtime package, imported by the notebooks: data, encoders, views, training and experiment
benches, figures and the shipped reference runs."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds data/ (the course's, or a student kit's)
