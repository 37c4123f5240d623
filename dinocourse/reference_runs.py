"""The reference runs that ship with the course (given code): what a much longer run of the same code reaches.

A reference run is a folder of files and a ``MANIFEST.json`` with their md5 sums (written by :func:`write_manifest`,
checked by :func:`verify`). Assignment 1's reference run (made by the course's reference-run command) holds the trained
teacher in half precision (``teacher.pt``), the run's health record (``health.pt``) and its validation curve and
recipe (``curve.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

from dinocourse import REPO_ROOT
from dinocourse.data import DataError, md5sum

REFERENCE_DIR = REPO_ROOT / "data" / "reference"


def write_manifest(folder: Path, names: list[str]) -> Path:
    """Write ``folder/MANIFEST.json``: the md5 sum and size of each named file."""
    folder = Path(folder)
    manifest = {name: {"md5": md5sum(folder / name), "bytes": (folder / name).stat().st_size} for name in names}
    path = folder / "MANIFEST.json"
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def verify(folder: Path) -> dict:
    """Check every file of a reference run against its manifest; the manifest, or a DataError saying what is wrong."""
    folder = Path(folder)
    manifest_path = folder / "MANIFEST.json"
    if not manifest_path.is_file():
        raise DataError(f"no reference run in {folder}: MANIFEST.json is missing (the course ships it in "
                        f"data/reference/; get a fresh copy of the course or the student kit)")
    manifest = json.loads(manifest_path.read_text())
    for name, entry in manifest.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing (listed in {manifest_path}); get a fresh copy of the course")
        if md5sum(path) != entry["md5"]:
            raise DataError(f"{path} is damaged: md5 {md5sum(path)}, expected {entry['md5']}; get a fresh copy of "
                            "the course (a file stored by git LFS must be pulled, not its pointer)")
    return manifest


def run_folder(name: str) -> Path:
    return REFERENCE_DIR / name


def load_teacher(model, name: str):
    """``model`` (the notebook's ``ViTTinyDINO``) with the teacher weights of the reference run ``name``, in float32
    and evaluation mode. If the model's head has other parameters than the reference's, only the encoder is loaded
    and the message says what differs."""
    import torch

    folder = run_folder(name)
    verify(folder)
    state = torch.load(folder / "teacher.pt", map_location="cpu", weights_only=True)["teacher"]
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        encoder = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        model.encoder.load_state_dict(encoder)
        first = str(err).strip().splitlines()[:3]
        print(f"Only the reference's encoder was loaded: the reference's head does not fit your DINOHead "
              f"({' '.join(first)}); the pseudo-labels of the reference below are those of your head, untrained.")
    return model.eval()


def load_health(name: str):
    """The health record of the reference run ``name`` (a :class:`dinocourse.health.TrainingHealth`)."""
    import torch

    from dinocourse.health import TrainingHealth

    folder = run_folder(name)
    verify(folder)
    health = TrainingHealth()
    health.load_state_dict(torch.load(folder / "health.pt", map_location="cpu", weights_only=True))
    return health


def load_curve(name: str) -> dict:
    """The recipe, validation curve and wall time of the reference run ``name`` (``curve.json``)."""
    folder = run_folder(name)
    verify(folder)
    return json.loads((folder / "curve.json").read_text())


def load_seeds(name: str) -> list[dict]:
    """The run summaries (``seed-N.json``) of the multi-seed reference ``name``, in seed order; none while the
    folder does not exist (as while the reference-run command makes it)."""
    folder = run_folder(name)
    if not folder.exists():
        return []
    manifest = verify(folder)
    names = sorted((n for n in manifest if n.startswith("seed-")), key=lambda n: int(n[5:].split(".")[0]))
    return [json.loads((folder / n).read_text()) for n in names]
