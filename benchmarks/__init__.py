"""The performance benchmark of issue 5: `python -m benchmarks` (a script that prints figures, not a test)."""
