"""Running the `jobtickets` command in-process (jobtickets.cli.main) with captured output, for the CLI tests."""

from __future__ import annotations

import io

from jobtickets import cli
from tests.e2e.local_system import LocalSystem


def run_cli(args: list[str], environ: dict[str, str] | None = None, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(args, out=out, err=err, stdin=io.StringIO(stdin), environ=environ or {})
    return code, out.getvalue(), err.getvalue()


def service_env(system: LocalSystem) -> dict[str, str]:
    return {cli.URL_ENV: system.api_url, cli.API_KEY_ENV: system.api_key}
