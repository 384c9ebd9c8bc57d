"""`python -m jobtickets` runs the CLI."""

from __future__ import annotations

from jobtickets.cli import main

raise SystemExit(main())
