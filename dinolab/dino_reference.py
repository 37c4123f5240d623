"""Assignment 1's reference run: the solution notebook's own DINO, trained much longer than the quick budget on the
sample's training split, with its validation curve; what the notebook shows next to the student's quick run.

``python -m dinolab.dino_reference [--name NAME] [--epochs N]`` (``make reference-run``) writes into
``data/reference/NAME/``:

    teacher.pt     the teacher (encoder and head) in half precision, and the run's seed (not with --no-teacher)
    health.pt      the run's health record (dinocourse.health.TrainingHealth.state_dict())
    curve.json     validation 1-NN accuracy against images seen, and the recipe (every setting of the run)
    MANIFEST.json  md5 of every file above

``--recipe original`` trains with the original recipe (the teacher-temperature schedule and the unscaled learning
rate) instead of the short-run recipe: with the quick budget it is the collapsed run Part IV shows. The recipe and
the length are decided on the validation split; the test split is read once, by the notebook.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import torch

from autograder.assignment.course import COURSE_ROOT
from autograder.runtime.definitions import load_definitions
from dinocourse.data import PathMNIST
from dinocourse.reference_runs import REFERENCE_DIR, write_manifest
from dinocourse.training import Recipe, use_fast_views

NOTEBOOK = COURSE_ROOT / "solutions" / "01_dino" / "dino.ipynb"


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dinolab.dino_reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60, help="passes over the sample's training split")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--recipe", choices=("short-run", "original"), default="short-run",
                        help="short-run: teacher temperature 0.02, lr x batch/256; original: the seed's schedules")
    parser.add_argument("--eval-every", type=int, default=5, help="epochs between validation 1-NN points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="training images (default: the whole split)")
    parser.add_argument("--teacher", action=argparse.BooleanOptionalAction, default=True,
                        help="ship the trained teacher (--no-teacher: the health record and curve only)")
    parser.add_argument("--resume", action="store_true", help="go on from the run's last epoch checkpoint")
    parser.add_argument("--name", default="dino-long", help="the run's folder under data/reference/ (the notebook "
                        "shows dino-long and dino-quick-original)")
    parser.add_argument("--out", type=Path, default=None, help="where the run's files go (default: "
                        "data/reference/NAME, the course's shipped reference runs)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    args.out = args.out or REFERENCE_DIR / args.name
    if args.threads:
        torch.set_num_threads(args.threads)
    with contextlib.redirect_stdout(io.StringIO()):
        nb = load_definitions(NOTEBOOK, env={"DINO_MODE": "tiny"}, name="dino_reference_nb")
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    recipe = Recipe.named(args.recipe, args.batch_size)
    torch.manual_seed(args.seed)
    dataset = nb.subset(nb.LocalGlobalPathMNIST(num_local=2, num_global=2), args.limit)
    trainer = nb.DINOTrainer(dataset, lr_schedule=recipe.lr(nb.lr_schedule), wd_schedule=nb.wd_schedule,
                             teacher_temp_schedule=recipe.teacher_temperature(nb.teacher_temp_schedule),
                             teacher_ema_schedule=nb.ema_schedule, batch_size=args.batch_size, out_dim=256,
                             ckpt_name=COURSE_ROOT / "build" / f"{args.out.name}-trainer.pth").to(device)
    use_fast_views(trainer, dataset, device)
    evaluation = nb.transforms.Compose([nb.transforms.ToTensor(), nb.LocalGlobalPathMNIST.NORMALIZE])
    train_set = PathMNIST(split="train", transform=evaluation)
    val_set = PathMNIST(split="val", transform=evaluation)
    curve = []

    def probe(epoch):
        acc = nb.eval_knn(trainer.teacher.model.encoder, train_set, val_set, device).item()
        curve.append({"epoch": epoch, "steps": trainer.steps, "images_seen": trainer.steps * args.batch_size,
                      "val_knn": acc, "seconds": round(time.perf_counter() - start, 1)})
        print(f"epoch {epoch}: validation 1-NN {acc:.1%} ({curve[-1]['seconds']:.0f} s)", flush=True)

    start = time.perf_counter()
    probe(0)
    trainer.train(args.epochs, resume=args.resume, on_epoch=lambda epoch: probe(epoch) if epoch % args.eval_every == 0
                  or epoch == args.epochs else None)
    files = ["health.pt", "curve.json"]
    if args.teacher:
        teacher = {k: v.half() if v.is_floating_point() else v for k, v in trainer.teacher.model.state_dict().items()}
        torch.save({"teacher": teacher, "seed": args.seed}, args.out / "teacher.pt")
        files.insert(0, "teacher.pt")
    torch.save(trainer.health.state_dict(), args.out / "health.pt")
    info = {"recipe": {**recipe.describe(), "epochs": args.epochs, "batch_size": args.batch_size,
                       "train_images": len(dataset), "seed": args.seed, "views": "2 global + 2 local"},
            "device": device.type, "threads": torch.get_num_threads(),
            "train_seconds": round(time.perf_counter() - start, 1), "curve": curve,
            "health": trainer.health.verdict()}
    (args.out / "curve.json").write_text(json.dumps(info, indent=1) + "\n")
    write_manifest(args.out, files)
    print(f"done in {info['train_seconds']:.0f} s: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
