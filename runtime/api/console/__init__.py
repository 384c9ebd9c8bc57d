"""The web console: static HTML, JavaScript and CSS (in `static/`, no build step) served under CONSOLE_PATH.

The page is a client of the public API like any other: it signs in with an API key (kept in the tab's
sessionStorage only) and calls /api/v1 with it as a bearer token. Its answers carry a strict Content-Security-Policy
(scripts, styles and connections from this origin only, nothing inline, no framing), so a job's params, metadata
or error (user input, which the script only ever renders as text) cannot run as code even if rendered wrongly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

CONSOLE_PATH: Final = "/console"
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CONSOLE_HEADERS: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # Revalidate each time (the files carry an ETag): a new release's page and script arrive together.
    (b"cache-control", b"no-cache"),
)


class ConsoleFiles(StaticFiles):
    """StaticFiles whose answers carry CONSOLE_HEADERS; a missing file is the API's JSON 404."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *CONSOLE_HEADERS]
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def mount_console(app: FastAPI) -> None:
    app.mount(CONSOLE_PATH, ConsoleFiles(directory=STATIC_DIR, html=True), name="console")
