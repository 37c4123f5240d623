"""The data layer: the embedded sample, the default root, clear errors, and the download path (local server)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from medmnist.info import INFO
from PIL import Image

from dinocourse import data
from dinocourse.data import FILENAME, MANIFEST, SAMPLE_DIR, SPLITS, DataError, PathMNIST, md5sum, prepare_root, subset
from dinocourse.sample import build_sample, make_sample, write_npz

OFFICIAL_FIRST_1000_CLASS_COUNTS = [106, 119, 107, 140, 91, 145, 82, 91, 119]


def test_sample_is_present_and_matches_its_manifest():
    manifest = json.loads((SAMPLE_DIR / MANIFEST).read_text())
    assert md5sum(SAMPLE_DIR / FILENAME) == manifest["md5"]
    assert manifest["n_samples"] == {"train": 572, "val": 143, "test": 285}
    assert "NOT the official" in manifest["description"]
    assert manifest["license"] == "CC BY 4.0"
    assert (SAMPLE_DIR / "README.md").is_file()


def test_sample_splits_are_stratified_4_1_2_and_partition_the_first_1000_train_images():
    with np.load(SAMPLE_DIR / FILENAME) as npz:
        indices = np.concatenate([npz[f"{s}_source_indices"] for s in SPLITS])
        counts = {s: np.bincount(npz[f"{s}_labels"][:, 0], minlength=9) for s in SPLITS}
        for split in SPLITS:
            assert npz[f"{split}_images"].shape[1:] == (28, 28, 3) and npz[f"{split}_images"].dtype == np.uint8
            assert npz[f"{split}_labels"].shape[1] == 1
    assert sorted(indices.tolist()) == list(range(1000))
    total = sum(counts.values())
    assert total.tolist() == OFFICIAL_FIRST_1000_CLASS_COUNTS
    for split, share in (("train", 4 / 7), ("val", 1 / 7), ("test", 2 / 7)):
        assert np.all(np.abs(counts[split] - share * total) <= 1), split


def test_sample_is_rebuilt_byte_for_byte_by_its_script(tmp_path):
    # reconstruct the source (official train images 0-999, in order) from the sample itself, then rebuild
    with np.load(SAMPLE_DIR / FILENAME) as npz:
        images = np.zeros((1000, 28, 28, 3), np.uint8)
        labels = np.zeros((1000, 1), np.uint8)
        for split in SPLITS:
            idx = npz[f"{split}_source_indices"]
            images[idx], labels[idx] = npz[f"{split}_images"], npz[f"{split}_labels"]
    source = tmp_path / "source.npz"
    np.savez(source, train_images=images, train_labels=labels)
    manifest = make_sample(source, tmp_path / "rebuilt", n=1000, seed=0)
    assert (tmp_path / "rebuilt" / FILENAME).read_bytes() == (SAMPLE_DIR / FILENAME).read_bytes()
    assert manifest == json.loads((SAMPLE_DIR / MANIFEST).read_text())


def test_pathmnist_loads_the_sample_like_medmnist_does():
    for split, n in (("train", 572), ("val", 143), ("test", 285)):
        dataset = PathMNIST(split=split, root=SAMPLE_DIR)
        assert len(dataset) == n  # medmnist's own __len__ asserts the official sizes
        image, label = dataset[0]
        assert isinstance(image, Image.Image) and image.size == (28, 28) and image.mode == "RGB"
        assert label.shape == (1,) and 0 <= int(label[0]) < 9
    assert "NOT the official" in data.describe(dataset)
    assert "285" in repr(dataset)


def test_subset_is_seeded_random_and_keeps_the_dataset_attributes():
    dataset = PathMNIST(split="test", root=SAMPLE_DIR)
    part = subset(dataset, 10)
    assert len(part) == 10 and part.split == "test" and part.data_info["kind"] == "sample"
    assert part.indices == sorted(part.indices) and part.indices != list(range(10))
    assert subset(dataset, 10).indices == part.indices and subset(dataset, 10, seed=1).indices != part.indices
    assert subset(dataset, None) is dataset and subset(dataset, 10_000) is dataset


def test_default_root_follows_dino_data_then_full_data_then_the_sample(monkeypatch, tmp_path):
    monkeypatch.delenv("DINO_DATA", raising=False)
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    assert data.default_data_root() == data.SAMPLE_DIR
    (tmp_path / FILENAME).write_bytes(b"")
    assert data.default_data_root() == tmp_path
    monkeypatch.setenv("DINO_DATA", str(tmp_path / "elsewhere"))
    assert data.default_data_root() == tmp_path / "elsewhere"


def test_download_request_without_a_root_targets_data(monkeypatch, tmp_path):
    monkeypatch.delenv("DINO_DATA", raising=False)
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    monkeypatch.setenv("DINO_DOWNLOAD", "1")
    assert data.default_data_root() == tmp_path


def test_missing_root_and_missing_file_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="does not exist.*DINO_DATA.*DINO_DOWNLOAD=1"):
        PathMNIST(split="train", root=tmp_path / "nowhere", download=False)
    with pytest.raises(DataError, match=f"No {FILENAME} in .*DINO_DATA"):
        PathMNIST(split="train", root=tmp_path, download=False)


def test_corrupt_file_is_reported_with_both_md5s(tmp_path):
    shutil.copytree(SAMPLE_DIR, tmp_path / "sample")
    path = tmp_path / "sample" / FILENAME
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        PathMNIST(split="train", root=tmp_path / "sample")
    message = str(err.value)
    assert "corrupt" in message and md5sum(path) in message and INFO["pathmnist"]["MD5"] in message
    assert path.exists()  # a user's file is never deleted


def test_bad_split_and_size_are_refused():
    with pytest.raises(DataError, match="split must be one of"):
        PathMNIST(split="validation", root=SAMPLE_DIR)
    with pytest.raises(DataError, match="28"):
        PathMNIST(split="train", root=SAMPLE_DIR, size=64)


# ---------------------------------------------------------------- download through a local HTTP server


def fake_full_pathmnist(folder: Path) -> Path:
    """A small npz in medmnist's layout, standing in for the official file on the server."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 3), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 9, (n, 1), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    write_npz(folder / "pathmnist.npz", arrays)
    return folder / "pathmnist.npz"


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def point_medmnist_at(monkeypatch, url: str, md5: str, n_samples: dict):
    info = dict(INFO["pathmnist"], url=url, MD5=md5, n_samples=n_samples)
    monkeypatch.setitem(INFO, "pathmnist", info)


def test_download_through_medmnist_from_a_local_server(monkeypatch, server, tmp_path):
    base, served = server
    fake = fake_full_pathmnist(served)
    point_medmnist_at(monkeypatch, f"{base}/pathmnist.npz", md5sum(fake), {"train": 12, "val": 3, "test": 6})
    root = tmp_path / "root"
    dataset = PathMNIST(split="test", root=root, download=True)
    assert (root / FILENAME).read_bytes() == fake.read_bytes()
    assert dataset.data_info["kind"] == "full" and len(dataset) == 6
    assert dataset[0][1].shape == (1,)
    # a second instance finds the file and does not download again
    fake.unlink()
    assert len(PathMNIST(split="train", root=root, download=True)) == 12


def test_download_from_env_variables_before_anything_is_loaded(monkeypatch, server, tmp_path):
    """What the notebook's setup cell does: prepare_root() downloads, then the datasets load."""
    base, served = server
    fake = fake_full_pathmnist(served)
    point_medmnist_at(monkeypatch, f"{base}/pathmnist.npz", md5sum(fake), {"train": 12, "val": 3, "test": 6})
    monkeypatch.setenv("DINO_DATA", str(tmp_path / "env-root"))
    monkeypatch.setenv("DINO_DOWNLOAD", "1")
    assert prepare_root()["kind"] == "full"
    assert len(PathMNIST(split="val")) == 3


def test_failed_download_is_a_clear_error_and_leaves_nothing_behind(monkeypatch, server, tmp_path):
    base, _ = server
    point_medmnist_at(monkeypatch, f"{base}/missing.npz", "0" * 32, {"train": 1, "val": 1, "test": 1})
    with pytest.raises(DataError, match=r"Could not download PathMNIST from http://127\.0\.0\.1.*by hand"):
        PathMNIST(split="train", root=tmp_path / "root", download=True)
    assert not (tmp_path / "root" / FILENAME).exists()


def test_corrupt_download_is_rejected_and_removed(monkeypatch, server, tmp_path):
    base, served = server
    fake_full_pathmnist(served)
    point_medmnist_at(monkeypatch, f"{base}/pathmnist.npz", "f" * 32, {"train": 12, "val": 3, "test": 6})
    with pytest.raises(DataError, match="Could not download"):
        PathMNIST(split="train", root=tmp_path / "root", download=True)
    assert not (tmp_path / "root" / FILENAME).exists()


def test_build_sample_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, 28, 28, 3\) uint8"):
        build_sample(np.zeros((10, 28, 28), np.uint8), np.zeros((10, 1)))


def test_command_line_describes_a_root_or_says_what_is_wrong(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "dinocourse.data", "--root", str(SAMPLE_DIR)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "train 572 / val 143 / test 285" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "dinocourse.data", "--root", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("error: No pathmnist.npz in")
    assert "Traceback" not in bad.stderr
