"""Enter cgroups, set resource limits, then become the given command (``execvp``).

    python -S confine.py [--procs FILE]... [--limit NAME=VALUE]... -- COMMAND [ARG]...

The sandbox starts every confined process through this small script instead of a ``preexec_fn``: Python code
between ``fork`` and ``exec`` is not safe in a process with threads (the class grader has a pool of them), a new
process running this file is. It imports nothing but the standard library, so it starts in a few milliseconds.
``--procs`` names a cgroup's ``cgroup.procs`` file to join; ``--limit CPU=60`` sets ``RLIMIT_CPU`` (soft and hard).
"""

import os
import resource
import sys


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: confine.py [--procs FILE]... [--limit NAME=VALUE]... -- COMMAND [ARG]...", file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    for flag, value in zip(options[::2], options[1::2], strict=False):
        if flag == "--procs":
            try:
                with open(value, "w") as handle:
                    handle.write(str(os.getpid()))
            except OSError as err:
                print(f"confine: cannot join the cgroup {value}: {err}", file=sys.stderr)
                return 125
        elif flag == "--limit":
            name, _, number = value.partition("=")
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (int(number), int(number)))
        else:
            print(f"confine: unknown option {flag}", file=sys.stderr)
            return 2
    try:
        os.execvp(command[0], command)
    except OSError as err:
        print(f"confine: cannot run {command[0]}: {err}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
