"""The bed's configuration: every option with its group, type, default and help; defaults = Assignment 1's full DINO.

Precedence: defaults < ``--from_json FILE`` < command-line flags. Unknown options and bad values are errors that say
what was expected and what was found.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENCODERS = ("vit_tiny", "resnet18", "vgg11_bn", "vgg11", "flatten")
MULTICROPS = ("1x28", "2x28", "2x28+2x28", "2x28+4x28")
SCHEDULE = re.compile(r"^cos\(\s*([-+.\deE]+)\s*,\s*([-+.\deE]+)\s*(?:,\s*warmup\s*=\s*([.\d]+)\s*)?"
                      r"(?:,\s*start\s*=\s*([-+.\deE]+)\s*)?\)$")


class ConfigError(ValueError):
    """A bad option or value; the message says what was expected."""


@dataclass(frozen=True)
class Option:
    name: str
    group: str
    kind: str          # int, float, str, bool, schedule, dims, optional-float, optional-int
    default: Any
    help: str
    choices: tuple = ()


def _opt(group, name, kind, default, help, choices=()):
    return Option(name, group, kind, default, help, tuple(choices))


OPTIONS = [
    # general
    _opt("general", "seed", "int", 0, "Random seed (weights, batches, probes)."),
    _opt("general", "code", "str", "solutions", "Where the algorithms come from: 'solutions' (the course's solution "
         "notebooks), 'assignments' (the released ones) or a folder holding 01_dino/ and 02_random_teachers/."),
    _opt("general", "force_cpu", "bool", False, "Train on the CPU even if a GPU is there."),
    _opt("general", "threads", "optional-int", None, "Torch threads of this run (default: torch's choice)."),
    # data
    _opt("data", "n_samples", "optional-int", None, "Training images to use, drawn at random (default: all)."),
    _opt("data", "n_eval", "optional-int", None, "Test images the probes use, drawn at random (default: all)."),
    _opt("data", "bs_train", "int", 256, "Batch size of training."),
    _opt("data", "mc", "str", "2x28+2x28", "Multi-crop: global x size + local x size (the teacher of DINO sees the "
         "global views; with pairing 'same' every view).", MULTICROPS),
    _opt("data", "augs", "str", "dino", "Augmentations: 'dino' (Assignment 1's views) or 'none' (the image as it "
         "is, normalized).", ("dino", "none")),
    _opt("data", "noise_inputs", "bool", False, "Train on Gaussian noise of the images' shape instead of images."),
    # model
    _opt("model", "enc", "str", "vit_tiny", "Encoder (from dinocourse.models).", ENCODERS),
    _opt("model", "hid_dims", "dims", [384, 384], "Hidden dimensions of the head's MLP."),
    _opt("model", "l2bot_dim", "int", 96, "Dimension of the L2-normalized bottleneck."),
    _opt("model", "out_dim", "int", 256, "Output dimension of the head."),
    # teacher and student
    _opt("teacher and student", "t_init_seed", "optional-int", None, "Seed of the teacher's random weights "
         "(default: seed)."),
    _opt("teacher and student", "s_init", "str", "teacher", "Initialization of the student.",
         ("teacher", "random", "interpolated", "neighborhood")),
    _opt("teacher and student", "s_init_seed", "optional-int", None, "Seed of the random network used by s_init "
         "(default: seed + 1000)."),
    _opt("teacher and student", "s_init_alpha", "float", 0.5, "Interpolation alpha (s_init interpolated)."),
    _opt("teacher and student", "s_init_eps", "float", 1e-3, "Neighborhood eps (s_init neighborhood)."),
    _opt("teacher and student", "s_init_var_preserving", "bool", True, "Divide the interpolation by "
         "sqrt((1-alpha)^2+alpha^2)."),
    _opt("teacher and student", "t_mode", "str", "ema", "Teacher updates: 'ema' of the student, or 'no_update' (a "
         "frozen random teacher).", ("ema", "no_update")),
    _opt("teacher and student", "t_mom", "schedule", "cos(0.992,0.996)", "Teacher EMA momentum (t_mode ema): a number "
         "or cos(base,final[,warmup=pct][,start=value])."),
    _opt("teacher and student", "t_cmom", "optional-float", 0.9, "Centering momentum of the teacher's outputs "
         "(Assignment 1's DINOLoss); null: no centering (Assignment 2's DistillationLoss)."),
    _opt("teacher and student", "t_temp", "schedule", "cos(0.07,0.07,warmup=0.1,start=0.04)", "Teacher temperature."),
    _opt("teacher and student", "s_temp", "float", 0.1, "Student temperature."),
    # loss and training
    _opt("training", "loss", "str", "CE", "Distillation loss.", ("CE", "KL")),
    _opt("training", "loss_pairing", "str", "opposite", "Which teacher view meets which student view.",
         ("same", "opposite", "all")),
    _opt("training", "n_epochs", "int", 15, "Epochs of training."),
    _opt("training", "n_steps", "optional-int", None, "Stop after this many steps (default: n_epochs' worth)."),
    _opt("training", "opt", "str", "adamw", "Optimizer.", ("adamw", "adam", "sgd")),
    _opt("training", "opt_lr", "schedule", "cos(5e-4,2e-4,warmup=0.1)", "Learning rate for batch size 256, scaled "
         "linearly with bs_train."),
    _opt("training", "opt_wd", "schedule", "cos(0.02,0.04)", "Weight decay."),
    _opt("training", "opt_mom", "float", 0.9, "Momentum of SGD."),
    _opt("training", "clip_grad", "optional-float", None, "Clip the gradients' total norm (null: no clipping)."),
    # probing
    _opt("probing", "probe_every", "int", 1, "Probe before training and every this many epochs (and at the end)."),
    _opt("probing", "probing_k", "int", 20, "Neighbors of the k-NN probe."),
    _opt("probing", "probing_epochs", "int", 10, "Epochs of the linear probe."),
    _opt("probing", "probing_bs", "int", 256, "Batch size of the linear probe."),
    # output
    _opt("output", "name", "optional-str", None, "Name of the run's folder under $DINO_RESULTS (default: made from "
         "the encoder, the setting and the seed)."),
    _opt("output", "save_ckpt", "bool", True, "Save a checkpoint after every epoch."),
]
BY_NAME = {o.name: o for o in OPTIONS}
GROUPS = list(dict.fromkeys(o.group for o in OPTIONS))


def parse_schedule(value, name: str) -> dict:
    """A number, or ``cos(base,final[,warmup=pct][,start=value])``: a dict for A1's CosineSchedule."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number or cos(base,final,...), got {value!r}")
    if isinstance(value, (int, float)):
        return {"base_value": float(value), "final_value": float(value)}
    if isinstance(value, dict):
        return value
    match = SCHEDULE.match(str(value).strip())
    if not match:
        try:
            return parse_schedule(float(value), name)
        except ValueError:
            raise ConfigError(f"{name}: expected a number or cos(base,final[,warmup=pct][,start=value]), e.g. "
                              f"'cos(0.04,0.07,warmup=0.1)', got {value!r}") from None
    base, final, warmup, start = match.groups()
    return {"base_value": float(base), "final_value": float(final), "warmup_pct": float(warmup or 0),
            "start_warmup_value": float(start or 0)}


def convert(option: Option, value):
    """The value of an option from JSON or the command line, checked."""
    name, kind = option.name, option.kind
    try:
        if value is None:
            if kind.startswith("optional"):
                return None
            raise ConfigError(f"{name} cannot be null")
        if kind.startswith("optional") and isinstance(value, str) and value.lower() in ("none", "null"):
            return None
        if kind in ("int", "optional-int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(value)
        elif kind in ("float", "optional-float"):
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
        elif kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = value.lower() in ("true", "1", "yes")
            elif not isinstance(value, bool):
                raise ValueError
        elif kind == "dims":
            if isinstance(value, str):
                value = [v for v in re.split(r"[,\s]+", value.strip("[] ")) if v]
            value = [int(v) for v in value]
            if any(v <= 0 for v in value):
                raise ValueError
        elif kind == "schedule":
            parse_schedule(value, name)
        elif kind in ("str", "optional-str"):
            value = str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {kind.replace('optional-', 'null or ')}, got {value!r}") from None
    if option.choices and value not in option.choices:
        raise ConfigError(f"{name}: expected one of {', '.join(map(str, option.choices))}, got {value!r}")
    return value


def defaults() -> dict:
    return {o.name: o.default for o in OPTIONS}


def from_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--from_json: no such file {path}")
    try:
        loaded = json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"--from_json {path}: not valid JSON ({err})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"--from_json {path}: expected an object of options, got {type(loaded).__name__}")
    return overrides(loaded, f"{path}")


def overrides(values: dict, where: str) -> dict:
    unknown = [k for k in values if k not in BY_NAME and not k.startswith("_")]
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; `python -m dinolab --help` lists them")
    return {k: convert(BY_NAME[k], v) for k, v in values.items() if not k.startswith("_")}


def check(config: dict) -> dict:
    """Combinations that cannot work."""
    views = [int(part.split("x")[0]) for part in config["mc"].split("+")]
    if config["loss_pairing"] == "opposite" and sum(views) < 2:
        raise ConfigError(f"loss_pairing 'opposite' needs at least two views; mc {config['mc']!r} has one")
    if config["t_cmom"] is not None and (config["loss"], config["loss_pairing"]) != ("CE", "opposite"):
        raise ConfigError("centering (t_cmom) is Assignment 1's DINOLoss: it needs loss CE and loss_pairing "
                          f"opposite, got loss {config['loss']} and loss_pairing {config['loss_pairing']}; set "
                          "t_cmom to null for Assignment 2's DistillationLoss")
    if config["augs"] == "dino" and views[0] < 2:
        raise ConfigError(f"augs 'dino' makes two kinds of global views: mc needs at least two, got {config['mc']!r}")
    if config["t_cmom"] is not None and views[0] < 2:
        raise ConfigError("DINO with centering needs at least two global views (mc like 2x28+2x28)")
    if config["t_cmom"] is not None and config["enc"] == "flatten":
        raise ConfigError("enc flatten has no weights to train")
    for name in ("n_epochs", "bs_train", "probe_every", "probing_k", "probing_epochs", "probing_bs", "out_dim",
                 "l2bot_dim"):
        if config[name] < 1:
            raise ConfigError(f"{name}: expected a positive integer, got {config[name]}")
    return config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dinolab", description="Train DINO or distil a random teacher; "
                                "defaults are Assignment 1's full DINO, --from_json overrides them, flags override "
                                "the JSON. Results: $DINO_RESULTS/<name>/ (default results/). Data: $DINO_DATA.",
                                argument_default=argparse.SUPPRESS, allow_abbrev=False)
    p.add_argument("--from_json", type=Path, help="JSON file of options (see configs/)")
    for group in GROUPS:
        g = p.add_argument_group(group)
        for o in (o for o in OPTIONS if o.group == group):
            default = json.dumps(o.default) if not isinstance(o.default, str) else o.default
            g.add_argument(f"--{o.name}", metavar=o.kind.upper().replace("OPTIONAL-", ""),
                           help=o.help + (f" Default: {default}." if o.default is not None else "")
                           + (f" One of: {', '.join(o.choices)}." if o.choices else ""))
    return p


def resolve(argv: list[str]) -> dict:
    """Defaults, then --from_json, then flags: the checked configuration."""
    args = vars(parser().parse_args(argv))
    config = defaults()
    if "from_json" in args:
        config.update(from_json(args.pop("from_json")))
    config.update(overrides(args, "command line"))
    return check(config)
