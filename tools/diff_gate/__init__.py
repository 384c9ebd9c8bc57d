"""The pull-request diff gate (`python -m tools.diff_gate`): standard library only at import, so the comment job
runs it with a bare Python."""
