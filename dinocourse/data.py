"""PathMNIST for the course: medmnist's own class, checked, with the embedded sample as the offline default.

The notebooks load data with :class:`PathMNIST`, a thin subclass of ``medmnist.PathMNIST``. With the full
dataset in the root (``pathmnist.npz`` as medmnist downloads it) it behaves exactly like medmnist's class;
the only differences are

* the root defaults to ``$DINO_DATA``, else ``data/`` when the full file is there, else the embedded sample
  ``data/sample/`` (1,000 real PathMNIST images, see ``data/sample/README.md``);
* the file is md5-checked and every problem (missing root, missing file, corrupt file, failed download,
  bad split) is a :class:`DataError` that says what was expected, what was found and what to do;
* a smaller file described by a ``MANIFEST.json`` next to it (the embedded sample) is accepted:
  medmnist's ``__len__`` asserts the official split sizes, so ``info["n_samples"]`` is taken from the
  manifest instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import medmnist
import torch
from medmnist.info import INFO
from torch.utils.data import Subset

from dinocourse import REPO_ROOT

DATA_DIR = REPO_ROOT / "data"
SAMPLE_DIR = DATA_DIR / "sample"
FLAG = "pathmnist"
FILENAME = f"{FLAG}.npz"
MANIFEST = "MANIFEST.json"
SPLITS = ("train", "val", "test")
# channel statistics of the PathMNIST training images (as Assignment 1 normalizes with them)
PATHMNIST_MEAN = (0.7405, 0.5330, 0.7058)
PATHMNIST_STD = (0.1237, 0.1768, 0.1244)

__all__ = [
    "DATA_DIR",
    "SAMPLE_DIR",
    "DataError",
    "PathMNIST",
    "default_data_root",
    "describe",
    "inspect_root",
    "md5sum",
    "prepare_root",
    "subset",
]


class DataError(RuntimeError):
    """A problem with the dataset files, with a message that says what to do about it."""


def _download_requested() -> bool:
    return os.environ.get("DINO_DOWNLOAD", "0") == "1"


def default_data_root() -> Path:
    """The dataset root: ``$DINO_DATA`` if set, else ``data/`` if the full file is there or is to be downloaded
    (``DINO_DOWNLOAD=1``), else the embedded sample."""
    env = os.environ.get("DINO_DATA")
    if env:
        return Path(env).expanduser()
    if (DATA_DIR / FILENAME).exists() or _download_requested():
        return DATA_DIR
    return SAMPLE_DIR


def prepare_root(root: Path | None = None, download: bool | None = None) -> dict:
    """Make sure ``root`` (default: :func:`default_data_root`) holds a valid PathMNIST file and say what it is.

    Downloads full PathMNIST first when ``download`` (default: ``$DINO_DOWNLOAD == "1"``) is set and the file
    is missing; then checks it like :func:`inspect_root`, whose result it returns.
    """
    root = Path(root).expanduser() if root is not None else default_data_root()
    if download is None:
        download = _download_requested()
    if download and not (root / FILENAME).exists():
        _download(root)
    return inspect_root(root)


_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def md5sum(path: Path) -> str:
    """md5 of a file, cached on (path, size, mtime) so that several datasets over one file hash it once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MD5_CACHE:
        digest = hashlib.md5()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _MD5_CACHE[key] = digest.hexdigest()
    return _MD5_CACHE[key]


def _how_to_fix(root: Path) -> str:
    return (
        f"To use the embedded 1,000-image sample, unset DINO_DATA (or set it to {SAMPLE_DIR}). "
        f"To use full PathMNIST (~200 MB from Zenodo), set DINO_DOWNLOAD=1 with DINO_DATA={root}, "
        "or run `make data-full` to put it in data/."
    )


def inspect_root(root: Path) -> dict:
    """Check ``root/pathmnist.npz`` and say what it is.

    Returns ``{"kind": "full" | "sample", "path": Path, "md5": str, "n_samples": {split: int}}``.
    Raises :class:`DataError` when the root or the file is missing or the file's md5 is unknown.
    """
    root = Path(root)
    path = root / FILENAME
    if not root.is_dir():
        raise DataError(f"PathMNIST root {root} does not exist (expected a folder with {FILENAME}). "
                        + _how_to_fix(root))
    if not path.is_file():
        found = sorted(p.name for p in root.iterdir())[:10]
        raise DataError(f"No {FILENAME} in {root} (found: {found or 'nothing'}). " + _how_to_fix(root))
    digest = md5sum(path)
    official = INFO[FLAG]["MD5"]
    if digest == official:
        return {"kind": "full", "path": path, "md5": digest, "n_samples": dict(INFO[FLAG]["n_samples"])}
    manifest_path = root / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("md5") == digest:
            return {"kind": "sample", "path": path, "md5": digest, "n_samples": dict(manifest["n_samples"]),
                    "manifest": manifest}
        expected = f"{official} (full PathMNIST) or {manifest.get('md5')} (the sample in {MANIFEST})"
    else:
        expected = f"{official} (full PathMNIST)"
    raise DataError(
        f"{path} is corrupt or incomplete: its md5 is {digest}, expected {expected}. "
        f"Delete it and download it again (DINO_DOWNLOAD=1), or restore the embedded sample with "
        f"`git checkout -- data/sample`."
    )


def _download(root: Path) -> None:
    """Fetch pathmnist.npz into root through medmnist's own download (torchvision's download_url, md5-checked)."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / FILENAME
    fetcher = medmnist.PathMNIST.__new__(medmnist.PathMNIST)
    fetcher.root, fetcher.info, fetcher.size_flag = str(root), INFO[FLAG], ""
    try:
        fetcher.download()
    except RuntimeError as err:
        if target.exists() and md5sum(target) != INFO[FLAG]["MD5"]:
            target.unlink()  # a partial or corrupt download of ours; nothing of the user's is lost
        url = INFO[FLAG]["url"]
        cause = err.__context__ or err  # medmnist wraps the real error in a generic message
        raise DataError(f"Could not download PathMNIST from {url} into {root}. Check the network, or download "
                        f"{FILENAME} by hand (md5 {INFO[FLAG]['MD5']}) and put it in {root}. "
                        f"Cause: {type(cause).__name__}: {' '.join(str(cause).split())}") from err


class PathMNIST(medmnist.PathMNIST):
    """``medmnist.PathMNIST`` with a course default root, md5 checks, clear errors and sample support.

    Arguments are medmnist's, in medmnist's order. ``root=None`` means :func:`default_data_root`;
    ``download=None`` means ``$DINO_DOWNLOAD == "1"``. Only the 28×28 file is supported.
    """

    def __init__(self, split="train", transform=None, target_transform=None, download=None, as_rgb=False,
                 root=None, size=None, mmap_mode=None):
        if split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, got {split!r}")
        if size not in (None, 28):
            raise DataError(f"the course uses 28×28 PathMNIST (size=None or 28), got size={size!r}")
        self.data_info = prepare_root(root, download)
        super().__init__(split=split, transform=transform, target_transform=target_transform, download=False,
                         as_rgb=as_rgb, root=str(self.data_info["path"].parent), size=size, mmap_mode=mmap_mode)
        if self.data_info["kind"] == "sample":
            # medmnist's __len__ asserts the official split sizes; the sample's are in its manifest
            self.info = {**self.info, "n_samples": self.data_info["n_samples"]}


def describe(dataset: PathMNIST) -> str:
    """One line for a person: which data, where, how big."""
    info = dataset.data_info
    sizes = " / ".join(f"{split} {n:,}" for split, n in info["n_samples"].items())
    what = "Full PathMNIST (MedMNIST v2)" if info["kind"] == "full" else info["manifest"]["description"]
    return f"{what}\nRoot: {Path(dataset.root)} — {sizes}"


class _Subset(Subset):
    """A ``Subset`` that still answers the attributes of the dataset it cuts (``num_local``, ``info``, ...)."""

    def __getattr__(self, name):
        if name in ("dataset", "indices") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def subset(dataset, n: int | None, seed: int = 0):
    """``n`` items of ``dataset`` drawn at random (seeded, kept in dataset order); the dataset itself when
    ``n`` is None or not smaller. Random rather than the first ``n``: a file sorted by class stays balanced."""
    if n is None or n >= len(dataset):
        return dataset
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(dataset), generator=generator)[:n].sort().values.tolist()
    return _Subset(dataset, indices)


def main(argv: list[str] | None = None) -> int:
    """``python -m dinocourse.data [--root DIR] [--download]``: check (or fetch) a dataset root and describe it."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Check a PathMNIST root (and download full PathMNIST into it).")
    parser.add_argument("--root", type=Path, default=None, help="dataset root (default: as the notebooks choose)")
    parser.add_argument("--download", action="store_true", help="download full PathMNIST if it is missing")
    args = parser.parse_args(argv)
    try:
        dataset = PathMNIST(split="train", root=args.root, download=args.download or None)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(describe(dataset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
