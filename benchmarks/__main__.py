"""`python -m benchmarks`: runs the benchmark of issue 5 (see BENCHMARKS.md)."""

from __future__ import annotations

import sys

from benchmarks.bench_main import main

sys.exit(main())
