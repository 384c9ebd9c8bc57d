"""Issue 12, the web console's files under /console: served without a build step, with a strict CSP (nothing
inline), nosniff, no framing; the page and script render data as text only (no HTML sinks)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from runtime.api.console import CONSOLE_PATH, CONTENT_SECURITY_POLICY, STATIC_DIR
from tests.api.conftest import LiveApi

FILES = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_file_is_served_with_the_console_headers(live_api: LiveApi, name: str) -> None:
    response = httpx.get(f"{live_api.base_url}{CONSOLE_PATH}/{name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FILES[name])
    assert response.content == (STATIC_DIR / name).read_bytes()
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "X-Trace-Id" in response.headers


def test_the_console_path_leads_to_the_page(live_api: LiveApi) -> None:
    response = httpx.get(f"{live_api.base_url}{CONSOLE_PATH}", follow_redirects=True)
    assert response.status_code == 200
    assert str(response.url).endswith(f"{CONSOLE_PATH}/")
    assert "<title>Job tickets console</title>" in response.text
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_a_missing_file_is_a_json_404(live_api: LiveApi) -> None:
    response = httpx.get(f"{live_api.base_url}{CONSOLE_PATH}/no-such-file.js")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_the_policy_allows_nothing_inline_or_foreign() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval', no other origin
    assert directives["frame-ancestors"] == "'none'"


class _Inline(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block: inline scripts, handlers and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        self.problems.extend(f"{name}= on <{tag}>" for name in names if name.startswith("on") or name == "style")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def test_the_page_has_nothing_inline() -> None:
    parser = _Inline()
    parser.feed((STATIC_DIR / "index.html").read_text())
    assert parser.problems == []


def test_every_input_has_a_label() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    ids = re.findall(r"<(?:input|select)[^>]*\bid=\"([^\"]+)\"", html)
    labelled = set(re.findall(r"<label for=\"([^\"]+)\"", html))
    wrapped = {"live-toggle"}  # inside its <label>
    assert ids and set(ids) - wrapped <= labelled


def test_the_script_uses_no_html_sink_or_eval() -> None:
    script = (STATIC_DIR / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert 'setAttribute("style"' not in script
    assert "localStorage" not in script  # the key lives in sessionStorage, for the tab only
