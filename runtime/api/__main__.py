"""`python -m runtime.api [--host H] [--port P]`: serves the API with uvicorn; the options override the settings
JOBS_API_HOST and JOBS_API_PORT."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from runtime.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.api", description="Serve the job tickets API.")
    parser.add_argument("--host", help="the address to listen on (default: the setting JOBS_API_HOST)")
    parser.add_argument("--port", type=int, help="the port to listen on (default: the setting JOBS_API_PORT)")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    from runtime.api.app import create_app
    from runtime.api.http_server import server_config

    server = uvicorn.Server(
        server_config(create_app(), settings, host=args.host or settings.api_host, port=args.port or settings.api_port)
    )
    server.run()
    return 0 if server.started else 3  # 3: as uvicorn.run, the server never started (port taken, ...)


if __name__ == "__main__":
    sys.exit(main())
