"""`python -m runtime.worker.healthcheck [--max-age-s S] [--file PATH]`: the worker container's health check.
Exit 0 when the worker's receive loop touched its liveness file within the bound, 1 when the file is older or
absent (runtime/worker/liveness.py), with the reason on stdout (ECS keeps the check's output)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.worker.liveness import MAX_AGE_S, age_s, liveness_file

HEALTHY, UNHEALTHY = 0, 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.worker.healthcheck", description=__doc__)
    parser.add_argument("--max-age-s", type=float, default=MAX_AGE_S)
    parser.add_argument("--file", type=Path, default=None, help="default: $JOBS_LIVENESS_FILE or the built-in path")
    args = parser.parse_args(argv)
    path: Path = args.file or liveness_file()
    age = age_s(path)
    if age is None:
        print(f"unhealthy: no liveness file at {path}")
        return UNHEALTHY
    if age > args.max_age_s:
        print(f"unhealthy: the receive loop last turned {age:.0f} s ago (bound {args.max_age_s:.0f} s)")
        return UNHEALTHY
    print(f"healthy: the receive loop turned {age:.0f} s ago")
    return HEALTHY


if __name__ == "__main__":
    sys.exit(main())
