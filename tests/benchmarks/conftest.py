"""Keeps pytest out of the benchmark package: it is a script run by `make bench`, not a test suite."""

from __future__ import annotations

collect_ignore_glob = ["*.py"]
