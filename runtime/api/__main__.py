"""`python -m runtime.api [--host H] [--port P]`: serves the API with uvicorn (JOBS_API_HOST, JOBS_API_PORT)."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from runtime.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.api", description="Serve the job tickets API.")
    # Loopback unless told otherwise: containers set JOBS_API_HOST=0.0.0.0 (or pass --host).
    parser.add_argument("--host", default=os.environ.get("JOBS_API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("JOBS_API_PORT", "8080")))
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    from runtime.api.app import create_app
    from runtime.api.http_server import server_config

    server = uvicorn.Server(server_config(create_app(), settings, host=args.host, port=args.port))
    server.run()
    return 0 if server.started else 3  # 3: as uvicorn.run, the server never started (port taken, ...)


if __name__ == "__main__":
    sys.exit(main())
