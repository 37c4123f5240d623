"""Throughput of Assignment 1's training: where the time of the full setting (15 epochs of PathMNIST) goes.

Prints a table: images per second of the per-image view pipeline (the solution's ``LocalGlobalPathMNIST`` in a
DataLoader with 0/2/4/8 workers) against the batched views of ``dinocourse/views.py``, on the CPU and on a GPU when
there is one; the DINO model step (the solution's ``DINOTrainer.training_step``) in fp32 and with bf16 autocast; and
the projected wall time of the 15-epoch run for each pipeline.

Full PathMNIST is not shipped: the run is measured on 89,996 images made by repeating the embedded sample's 572
training images (the same image size and dtype; the cost per image does not depend on its content).

    python benchmarks/training_throughput.py [--batches 10] [--model-batch 256] [--workers 0 2 4 8]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch
from torch.utils.data import DataLoader, Dataset

from autograder import COURSE_ROOT as ROOT
from autograder.runtime.definitions import load_definitions
from dinocourse.data import SAMPLE_DIR
from dinocourse.views import BatchedViewLoader, dataset_images

FULL_TRAIN_IMAGES = 89_996
EPOCHS = 15


class Repeated(Dataset):
    """``n`` items made by repeating ``base``'s items (the per-image pipeline runs on every access)."""

    def __init__(self, base, n):
        self.base, self.n = base, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.base[i % len(self.base)]


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_second(batches, n_batches, batch_size, device, skip: int = 1) -> float:
    """Steady-state rate: the first ``skip`` batches (worker start-up, and the batches the workers have made ahead
    while it lasted) are not timed."""
    it = iter(batches)
    for _ in range(skip):
        next(it)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n_batches):
        batch = next(it)
        if device.type == "cuda":
            batch = batch.to(device, non_blocking=True)
    synchronize(device)
    return n_batches * batch_size / (time.perf_counter() - start)


def model_step_seconds(ns, device, batch_size, amp: bool, steps: int) -> float:
    sched = dict(lr_schedule=ns.CosineSchedule(5e-4, 2e-4, warmup_pct=0.1), wd_schedule=ns.CosineSchedule(0.02, 0.04),
                 teacher_temp_schedule=ns.CosineSchedule(0.07, 0.07, 0.1, 0.04),
                 teacher_ema_schedule=ns.CosineSchedule(0.992, 0.996))
    dataset = ns.LocalGlobalPathMNIST(root=SAMPLE_DIR)
    trainer = ns.DINOTrainer(dataset=dataset, batch_size=batch_size, out_dim=256, **sched).to(device)
    for s in sched.values():
        s.init(1000)
    trainer.steps = 200  # past the warm-up: a learning rate above zero
    batch = torch.randn(4, batch_size, 3, 28, 28, device=device)
    times = []
    for i in range(steps + 1):
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            trainer.training_step(batch).item()
        synchronize(device)
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256, help="images per batch of views (the full setting's 256)")
    parser.add_argument("--batches", type=int, default=10, help="timed batches per view pipeline")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4, 8])
    parser.add_argument("--model-batch", type=int, default=None,
                        help="batch of the model step (default: 256 on a GPU, 32 on a CPU, scaled to 256)")
    parser.add_argument("--model-steps", type=int, default=3)
    args = parser.parse_args(argv)
    # more workers than cores is part of what is measured; torch's warning about it is not news here
    warnings.filterwarnings("ignore", message="This DataLoader will create")

    os.environ.setdefault("DINO_RESULTS", str(ROOT / "build" / "benchmark-results"))
    ns = load_definitions(ROOT / "solutions" / "01_dino" / "dino.ipynb",
                          env={"DINO_MODE": "tiny", "DINO_RESULTS": os.environ["DINO_RESULTS"]})
    base = ns.LocalGlobalPathMNIST(num_local=2, num_global=2, root=SAMPLE_DIR)
    norm = base.NORMALIZE
    repeated_images = dataset_images(base).repeat(FULL_TRAIN_IMAGES // len(base) + 1, 1, 1, 1)[:FULL_TRAIN_IMAGES]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    gpu = devices[-1]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} CPUs"
          + (f", GPU {torch.cuda.get_device_name()}" if gpu.type == "cuda" else ", no GPU"))
    print(f"{FULL_TRAIN_IMAGES:,} images (the sample's {len(base)} repeated), batch {args.batch}, "
          f"2 global + 2 local views per image\n")

    rows = []  # (pipeline, where, images/s)
    for workers in args.workers:
        loader = DataLoader(Repeated(base, FULL_TRAIN_IMAGES), batch_size=args.batch, shuffle=True,
                            num_workers=workers, drop_last=True, pin_memory=gpu.type == "cuda",
                            persistent_workers=False)
        rate = images_per_second(loader, args.batches, args.batch, gpu, skip=2 * workers + 1)  # prefetch_factor 2
        rows.append((f"per image, DataLoader, {workers} workers", "cpu", rate, workers > 0))
    for device in devices:
        loader = BatchedViewLoader(repeated_images, args.batch, 2, 2, norm.mean, norm.std, device=device)
        rows.append(("batched views", device.type, images_per_second(loader, args.batches, args.batch, device),
                     False))

    model_batch = args.model_batch or (256 if gpu.type == "cuda" else 32)
    step = {}
    for amp in (False, True):
        seconds = model_step_seconds(ns, gpu, model_batch, amp, args.model_steps)
        step[amp] = seconds * args.batch / model_batch  # seconds per step of args.batch images
    steps = EPOCHS * (FULL_TRAIN_IMAGES // args.batch)

    print(f"{'view pipeline':<38} {'device':>6} {'images/s':>9}")
    for name, where, rate, _ in rows:
        print(f"{name:<38} {where:>6} {rate:9.0f}")
    scaled = "" if model_batch == args.batch else f" (measured at batch {model_batch}, scaled to {args.batch})"
    print(f"\nmodel step on {gpu.type}, batch {args.batch}{scaled}: fp32 {step[False]:.3f} s, bf16 autocast "
          f"{step[True]:.3f} s ({step[False] / step[True]:.2f}x)")
    best = min(step.values())
    print(f"\nprojected {EPOCHS}-epoch run ({steps:,} steps), with the faster model step ({best:.3f} s):")
    print(f"{'view pipeline':<38} {'device':>6} {'minutes':>8}")
    for name, where, rate, overlapped in rows:
        views = args.batch / rate
        # DataLoader workers make views while the model trains; in-process views (0 workers, batched) come first
        per_step = max(best, views) if overlapped else best + views
        if where == "cpu" and name.startswith("batched") and gpu.type == "cuda":
            continue  # a GPU run makes its batched views on the GPU
        print(f"{name:<38} {where:>6} {steps * per_step / 60:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
