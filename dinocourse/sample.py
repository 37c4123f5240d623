"""Build the embedded PathMNIST sample in ``data/sample/`` (seeded, stratified per class, byte-reproducible).

    python -m dinocourse.sample --source PATH [--out data/sample] [--n 1000] [--seed 0]

``--source`` is an npz with medmnist's keys ``train_images`` / ``train_labels``: the full ``pathmnist.npz``
as medmnist downloads it, or any file that holds the first images of its train split. The first ``--n``
train images are split per class 4:1:2 into the sample's train/val/test splits, so all three splits come
from the *official train split* (the official test split comes from another clinical center).

The output is ``pathmnist.npz`` in medmnist's layout (keys ``{split}_images``, ``{split}_labels``, plus
``{split}_source_indices``: each image's index in the official train split) and ``MANIFEST.json`` with its
md5 and split sizes, which :mod:`dinocourse.data` checks on every load. The npz is written with fixed zip
timestamps, so the same source and seed give the same bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from dinocourse.data import FILENAME, MANIFEST, SAMPLE_DIR, SPLITS, md5sum

RATIOS = {"train": 4, "val": 1, "test": 2}
DESCRIPTION = (
    "Embedded PathMNIST sample: the first {n:,} images of the official PathMNIST train split, split "
    "{ratios} per class (seed {seed}) into train/val/test. Its val/test are NOT the official val/test splits."
)


def split_indices(labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Per class: a seeded permutation, then test, val and train in the ratio 2:1:4 (rounded half up)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    total = sum(RATIOS.values())
    out: dict[str, list[int]] = {split: [] for split in SPLITS}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(np.floor(len(idx) * RATIOS["test"] / total + 0.5))
        n_val = int(np.floor(len(idx) * RATIOS["val"] / total + 0.5))
        out["test"] += idx[:n_test].tolist()
        out["val"] += idx[n_test:n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val:].tolist()
    return {split: np.sort(np.array(v, dtype=np.int64)) for split, v in out.items()}


def build_sample(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The sample's arrays (medmnist keys plus ``{split}_source_indices``) from train images and labels."""
    if images.ndim != 4 or images.shape[1:] != (28, 28, 3) or images.dtype != np.uint8:
        raise ValueError(f"expected train_images of shape (N, 28, 28, 3) uint8, got {images.shape} {images.dtype}")
    labels = np.asarray(labels).reshape(-1, 1)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    arrays = {}
    for split, idx in split_indices(labels[:, 0], seed).items():
        arrays[f"{split}_images"] = images[idx]
        arrays[f"{split}_labels"] = labels[idx].astype(np.uint8)
        arrays[f"{split}_source_indices"] = idx
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible (fixed member timestamps and order)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def make_sample(source: Path, out: Path, n: int = 1000, seed: int = 0) -> dict:
    """Write ``out/pathmnist.npz`` and ``out/MANIFEST.json``; return the manifest."""
    with np.load(source) as src:
        missing = {"train_images", "train_labels"} - set(src.files)
        if missing:
            raise SystemExit(f"{source} lacks {sorted(missing)}; expected medmnist's npz layout")
        images, labels = src["train_images"][:n], src["train_labels"][:n]
    if len(images) < n:
        raise SystemExit(f"{source} holds {len(images)} train images, fewer than --n {n}")
    arrays = build_sample(images, labels, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_npz(out / FILENAME, arrays)
    n_classes = int(labels.max()) + 1
    manifest = {
        "file": FILENAME,
        "md5": md5sum(out / FILENAME),
        "description": DESCRIPTION.format(n=n, ratios=":".join(str(RATIOS[s]) for s in SPLITS), seed=seed),
        "source": f"PathMNIST (MedMNIST v2, 28x28) official train split, indices 0-{n - 1}",
        "seed": seed,
        "ratios": RATIOS,
        "n_samples": {split: int(len(arrays[f"{split}_labels"])) for split in SPLITS},
        "class_counts": {split: np.bincount(arrays[f"{split}_labels"][:, 0], minlength=n_classes).tolist()
                         for split in SPLITS},
        "license": "CC BY 4.0",
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="npz with train_images/train_labels")
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR, help="output folder (default: data/sample)")
    parser.add_argument("--n", type=int, default=1000, help="number of train images to take (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class split (default 0)")
    args = parser.parse_args(argv)
    manifest = make_sample(args.source, args.out, args.n, args.seed)
    print(f"wrote {args.out / FILENAME} (md5 {manifest['md5']}): {manifest['n_samples']}")


if __name__ == "__main__":
    main()
