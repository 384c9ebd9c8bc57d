"""`python -m tools.diff_gate`: the diff gate's command line (see tools/diff_gate/cli.py)."""

from __future__ import annotations

import sys

from tools.diff_gate.cli import main

sys.exit(main())
