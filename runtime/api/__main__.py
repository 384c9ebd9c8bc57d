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
        get_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    from runtime.api.app import create_app

    app = create_app()
    # log_config=None keeps the JSON log handlers that observability installed; no access log (bytes cost).
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
