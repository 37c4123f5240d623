"""The full budget of Assignment 1 on this machine: full-mode training steps, timed end to end.

The solution notebook's ``DINOTrainer`` with the full budget's settings (batch 256, the original recipe, the views of
a batch made on the device, bf16 autocast on a GPU, the health record) trains for ``--steps`` steps after
``--warmup`` untimed ones on 89,996 images made by repeating the sample's 572 training images (full PathMNIST's
training split has 89,996 images of the same size; the cost of a step does not depend on the images' content).
Prints seconds per step, images per second and the projected time of the 15-epoch full run (5,265 steps).

    python benchmarks/gpu_check.py [--steps 200] [--warmup 20] [--batch-size 256]

``make gpu-check`` runs it, then ``benchmarks/training_throughput.py`` (``make benchmark-training``). On a CPU, a
tiny call (``--steps 2 --warmup 1 --batch-size 8``) checks the script in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from pathlib import Path

import torch

from autograder import COURSE_ROOT as ROOT
from autograder.runtime.definitions import load_definitions
from dinocourse.training import BATCH_SIZE, EPOCHS, use_fast_views
from dinocourse.views import BatchedViewLoader, dataset_images

FULL_TRAIN_IMAGES = 89_996


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (kernels, allocator)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE["full"])
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.environ.setdefault("DINO_RESULTS", str(ROOT / "build" / "gpu-check"))
    with contextlib.redirect_stdout(io.StringIO()):
        nb = load_definitions(ROOT / "solutions" / "01_dino" / "dino.ipynb", env={"DINO_MODE": "tiny"},
                              name="gpu_check_nb")
    torch.manual_seed(0)
    dataset = nb.LocalGlobalPathMNIST(num_local=2, num_global=2)
    trainer = nb.DINOTrainer(dataset, lr_schedule=nb.lr_schedule, wd_schedule=nb.wd_schedule,
                             teacher_temp_schedule=nb.teacher_temp_schedule, teacher_ema_schedule=nb.ema_schedule,
                             batch_size=args.batch_size, out_dim=256,
                             ckpt_name=Path(os.environ["DINO_RESULTS"]) / "gpu-check.pth").to(device)
    trainer.amp = device.type == "cuda"
    fast = use_fast_views(trainer, dataset, device)
    images = dataset_images(dataset).repeat(FULL_TRAIN_IMAGES // len(dataset) + 1, 1, 1, 1)[:FULL_TRAIN_IMAGES]
    norm = dataset.NORMALIZE
    trainer.data_loader = BatchedViewLoader(images, args.batch_size, 2, 2, norm.mean, norm.std, device=device)
    steps_per_epoch = len(trainer.data_loader)
    for schedule in (trainer.lr_schedule, trainer.wd_schedule, trainer.teacher_temp_schedule,
                     trainer.teacher_ema_schedule):
        schedule.init(EPOCHS["full"] * steps_per_epoch)
    trainer.train_one_epoch(0, max_steps=args.warmup)
    synchronize(device)
    start = time.perf_counter()
    trainer.train_one_epoch(0, max_steps=args.steps)
    synchronize(device)
    seconds = (time.perf_counter() - start) / args.steps
    total = EPOCHS["full"] * steps_per_epoch
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    rows = [("device", name), ("torch", torch.__version__), ("bf16 autocast", str(trainer.amp)),
            ("views", "batched on the device" if fast else "the dataset's, image by image"),
            ("training images", f"{FULL_TRAIN_IMAGES:,} (the sample's {len(dataset)} repeated)"),
            ("batch size", str(args.batch_size)), ("timed steps", f"{args.steps} (after {args.warmup} untimed)"),
            ("seconds per step", f"{seconds:.4f}"), ("images per second", f"{args.batch_size / seconds:,.0f}"),
            (f"projected {EPOCHS['full']}-epoch run", f"{total:,} steps: {total * seconds / 60:.1f} min"),
            ("health of the timed steps", trainer.health.verdict())]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
