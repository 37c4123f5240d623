"""``python -m dinolab [options]`` trains one configuration; ``python -m dinolab sweep ...`` runs a grid of them."""

from __future__ import annotations

import sys

from dinolab.code import CodeError
from dinolab.config import ConfigError, resolve


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:
        from dinolab.sweep import main as sweep

        return sweep(argv[1:])
    try:
        config = resolve(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from dinolab.run import results_root, run, run_name

    print(f"run {run_name(config)}: results in {results_root() / run_name(config)}")
    try:
        out = run(config)
    except (CodeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"done: {', '.join(sorted(p.name for p in out.iterdir()))} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
