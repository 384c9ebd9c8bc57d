"""Issue 12, the web console in a real browser: headless Debian Chromium driven by Playwright against the local
all-in-one. Sign in with the key the all-in-one printed, watch a job submitted with the `jobtickets` CLI reach
SUCCEEDED in the page, read its progress and timeline, see the API's 409 for a refused retry, cancel a job scheduled
ten minutes ahead, page and filter the list, pause while the tab is hidden, back off on errors, render hostile
metadata as text, and take a screenshot that shows the jobs table.

Chromium is Debian's (`/usr/bin/chromium`, installed by `make system-deps`); Playwright never downloads a browser
here. Without it these tests fail with that message: they are never skipped."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from tests.e2e.local_system import LocalSystem, running_system, wait_for_status

# Debian's Chromium by default; JOBS_TEST_CHROMIUM names another Chromium-based browser (GitHub's Ubuntu runners ship
# Google Chrome, and Ubuntu's own chromium package is only a snap shim).
CHROMIUM = Path(os.environ.get("JOBS_TEST_CHROMIUM", "/usr/bin/chromium"))
# What this machine's Chromium needs headless as root, and no background calls to hosts it cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 1000}
UI_TIMEOUT_MS = 30_000
expect.set_options(timeout=UI_TIMEOUT_MS)


def transform_job(**extra: Any) -> dict[str, Any]:
    return {
        "type": "transform_data",
        "params": {"records": [{"name": " Ada "}], "operations": [{"op": "strip", "fields": ["name"]}]},
        **extra,
    }


@pytest.fixture(scope="module")
def system() -> Iterator[LocalSystem]:
    with running_system() as local:
        yield local


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `make system-deps` (apt-get install chromium) or set "
            "JOBS_TEST_CHROMIUM to a Chromium-based browser; the console's browser tests need it"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, system: LocalSystem) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    opened.set_default_timeout(UI_TIMEOUT_MS)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield opened
        assert problems == []  # no script error, nothing the CSP had to block
    finally:
        context.close()


@pytest.fixture
def api(system: LocalSystem) -> Iterator[httpx.Client]:
    with system.client() as client:
        yield client


def sign_in(page: Page, system: LocalSystem) -> None:
    """With the keyboard only: the key into its labelled field, Enter submits."""
    page.goto(system.ready["console"])  # the address the all-in-one's ready line prints
    page.get_by_label("API key").focus()
    page.keyboard.type(system.api_key)
    page.keyboard.press("Enter")
    expect(page.locator("#jobs-table")).to_be_visible()


def submit_with_cli(system: LocalSystem, job_type: str, params: dict[str, Any], *options: str) -> dict[str, Any]:
    """`jobtickets submit` (clients/python), as a user at a terminal next to the console would."""
    env = {**os.environ, "JOBTICKETS_URL": system.api_url, "JOBTICKETS_API_KEY": system.api_key}
    command = [sys.executable, "-m", "jobtickets", "submit", "--type", job_type, "--params", json.dumps(params)]
    completed = subprocess.run(
        [*command, "--json", *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    job: dict[str, Any] = json.loads(completed.stdout)
    return job


def submit(api: httpx.Client, body: dict[str, Any]) -> str:
    """Over HTTP, for the jobs that only set the scene."""
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def row(page: Page, job_id: str) -> Any:
    return page.locator(f'#job-rows tr[data-job-id="{job_id}"]')


def open_with_keyboard(page: Page, job_id: str) -> None:
    row(page, job_id).get_by_role("button").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_have_attribute("data-job-id", job_id)
    expect(page.locator("#detail-heading")).to_be_focused()


def test_sign_in_watch_a_job_succeed_and_read_its_timeline(page: Page, system: LocalSystem, api: httpx.Client) -> None:
    sign_in(page, system)
    # The key lives in this tab's sessionStorage, nowhere else.
    assert page.evaluate("sessionStorage.getItem('jobtickets.apiKey')") == system.api_key
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []

    report = {
        "title": "sales",
        "rows": [{"region": "north", "amount": 3}, {"region": "south", "amount": 4}, {"region": "north", "amount": 5}],
        "group_by": "region",
        "metric": "amount",
        "destination": f"s3://{system.bucket}/tenants/local/console/report.json",
    }
    job_id = submit_with_cli(system, "generate_report", report)["jobId"]
    expect(row(page, job_id).locator("td.status")).to_have_text("SUCCEEDED")  # live refresh, no reload
    expect(row(page, job_id).locator("progress")).to_have_attribute("value", "100")
    open_with_keyboard(page, job_id)
    detail = page.locator("#detail")
    expect(detail).to_have_attribute("data-status", "SUCCEEDED")
    timeline = page.locator("#detail-timeline li")
    expect(timeline).to_have_count(3)
    assert [item.get_attribute("data-status") for item in timeline.all()] == ["PENDING", "PROCESSING", "SUCCEEDED"]
    job = api.get(f"/api/v1/jobs/{job_id}").json()
    for status, at in job["transitions"].items():
        expect(page.locator(f'#detail-timeline li[data-status="{status}"] time')).to_have_attribute("datetime", at)
    expect(page.locator("#detail-result")).to_contain_text("report.json")
    # The handler's last progress report: the fraction and its message.
    expect(page.locator("#detail-progress")).to_contain_text("100% — report written")

    # A retry of a SUCCEEDED job: the API's 409 is shown as it answered.
    page.get_by_role("button", name="Retry job").click()
    expect(page.locator("#action-result")).to_have_text(
        re.compile(r"retry refused: 409 job_not_retryable: .*SUCCEEDED")
    )

    # The stats: this job counted in the last hour (cached a few seconds per process, so it may take a refresh).
    expect(page.locator('#throughput-rows tr[data-status="SUCCEEDED"] td')).not_to_have_text("0")
    expect(page.locator('#queue-rows tr[data-priority="normal"] th')).to_have_text("normal")


def test_cancel_a_scheduled_job(page: Page, system: LocalSystem, api: httpx.Client) -> None:
    sign_in(page, system)
    # Ten minutes ahead: the job waits PENDING with runAt shown (its message delayed in SQS) until it is canceled.
    job = submit_with_cli(system, "transform_data", transform_job()["params"], "--delay-seconds", "600")
    job_id = job["jobId"]
    assert job["status"] == "PENDING" and job["runAt"]
    expect(row(page, job_id).locator("td.status")).to_have_text("PENDING")
    open_with_keyboard(page, job_id)
    expect(page.locator("#detail-fields time").first).to_have_attribute("datetime", job["runAt"])
    expect(page.locator("#detail-fields")).to_contain_text("Runs at")
    # Its message waits in the queue as a delayed one (the stats are cached a few seconds, so it may take a refresh).
    expect(page.locator('#queue-rows tr[data-priority="normal"] td').nth(2)).not_to_have_text("0")

    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#action-result")).to_have_text("cancel: 200, the job is CANCELED")
    expect(row(page, job_id).locator("td.status")).to_have_text("CANCELED")
    # Told to screen readers too: the live region names the job and its new status.
    expect(page.locator("#announcer")).to_have_text(f"Job {job_id[:8]} is now CANCELED.")
    expect(page.locator("#detail-timeline li")).to_have_count(2)  # PENDING, CANCELED: it never ran
    assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "CANCELED"
    # Cancelling it again is answered 200 (already CANCELED); the page says so.
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#action-result")).to_have_text("cancel: 200, the job is CANCELED")


def test_filters_and_pages(page: Page, system: LocalSystem, api: httpx.Client) -> None:
    batch = api.post("/api/v1/jobs/batch", json={"jobs": [transform_job() for _ in range(12)]})
    assert batch.status_code == 200 and {r["status"] for r in batch.json()["results"]} == {201}
    for result in batch.json()["results"]:
        wait_for_status(api, result["job"]["jobId"])
    sign_in(page, system)
    page.get_by_label("Status").select_option("SUCCEEDED")
    page.get_by_label("Type").fill("transform_data")
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("#job-rows tr")
    expect(rows).to_have_count(10)
    assert {r.get_attribute("data-status") for r in rows.all()} == {"SUCCEEDED"}
    first_page = [r.get_attribute("data-job-id") for r in rows.all()]
    page.get_by_role("button", name="Older").click()
    expect(page.locator("#page-label")).to_have_text("Page 2")
    expect(page.get_by_role("button", name="Newer")).to_be_enabled()
    second_page = [r.get_attribute("data-job-id") for r in rows.all()]
    assert second_page and not set(second_page) & set(first_page)
    page.get_by_role("button", name="Newer").click()
    expect(page.locator("#page-label")).to_have_text("Page 1")
    # A filter the API refuses: its 422 is shown.
    page.get_by_label("Type").fill("no_such_type")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#list-error")).to_contain_text("422 unknown_job_type")


def test_polling_pauses_while_hidden_and_backs_off_on_errors(page: Page, system: LocalSystem) -> None:
    sign_in(page, system)
    calls: list[float] = []

    def on_request(request: Request) -> None:
        if "/api/v1/" in request.url:
            calls.append(time.monotonic())

    page.on("request", on_request)
    expect(page.locator("#last-updated")).to_contain_text("Updated")
    expect(page.locator("#live-status")).to_have_text("Live: refreshing every 2 s")
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    expect(page.locator("#live-status")).to_have_text("Paused while the tab is hidden")
    hidden_at = time.monotonic()
    page.wait_for_timeout(5000)  # more than two poll intervals: none may start while hidden
    assert [at for at in calls if at > hidden_at + 0.5] == []
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    expect(page.locator("#live-status")).to_have_text("Live: refreshing every 2 s")

    # The stats endpoint failing: the page says so and waits longer each time (2 s doubled to 4 s, then 8 s).
    page.route(
        "**/api/v1/stats",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": "queue_unavailable", "detail": "queue depth cannot be read right now"}',
        ),
    )
    expect(page.locator("#stats-error")).to_have_text(
        "Stats: 503 queue_unavailable: queue depth cannot be read right now"
    )
    expect(page.locator("#live-status")).to_have_text(re.compile(r"trying again in (4|8) s"))
    expect(page.locator("#live-status")).to_have_text("Refresh failed; trying again in 8 s", timeout=15_000)
    # The list is still shown and refreshed meanwhile.
    expect(page.locator("#list-error")).to_have_text("")
    expect(page.locator("#job-rows tr").first).to_be_visible()
    page.unroute("**/api/v1/stats")
    expect(page.locator("#live-status")).to_have_text("Live: refreshing every 2 s", timeout=15_000)
    expect(page.locator("#stats-error")).to_have_text("")


def test_hostile_metadata_is_shown_as_text(page: Page, system: LocalSystem, api: httpx.Client) -> None:
    hostile = "<img src=x onerror=window.__owned=1><script>window.__owned=2</script>"
    job_id = submit(api, transform_job(metadata={"note": hostile, hostile: "key"}))
    sign_in(page, system)
    open_with_keyboard(page, job_id)
    expect(page.locator("#detail-metadata")).to_contain_text(hostile)
    assert page.locator("#detail img").count() == 0 and page.locator("#detail script").count() == 0
    assert page.evaluate("window.__owned") is None


def test_sign_out_forgets_the_key_and_a_wrong_key_is_refused(page: Page, system: LocalSystem) -> None:
    sign_in(page, system)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('jobtickets.apiKey')") is None
    page.get_by_label("API key").fill("jt_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("That API key was refused.")
    expect(page.locator("#app")).to_be_hidden()


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows (RGB or RGBA bytes) of an 8-bit, non-interlaced PNG, as Chromium writes them."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and color in (2, 6), (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, up_left = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - up_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[x] = (line[x] + predictor) & 0xFF
        rows.append(bytes(line) if channels == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = line
    return width, height, rows


def test_screenshot_shows_the_jobs_table(page: Page, system: LocalSystem, api: httpx.Client, tmp_path: Path) -> None:
    job_id = submit(api, transform_job())
    wait_for_status(api, job_id)
    sign_in(page, system)
    expect(row(page, job_id).locator("td.status")).to_have_text("SUCCEEDED")
    table = page.locator("#jobs-table")
    table.scroll_into_view_if_needed()
    shot = tmp_path / "console.png"
    page.screenshot(path=str(shot))
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (VIEWPORT["width"], VIEWPORT["height"])
    box = table.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 40
    # The table lies within the screenshot, and its region holds text: many pixels far from the background.
    left, top = int(box["x"]), int(box["y"])
    right, bottom = min(width, int(box["x"] + box["width"])), min(height, int(box["y"] + box["height"]))
    assert 0 <= left < right and 0 <= top < bottom
    background = rows[top][left * 3 : left * 3 + 3]
    inked = sum(
        1
        for y in range(top, bottom)
        for x in range(left, right)
        if sum(abs(a - b) for a, b in zip(rows[y][x * 3 : x * 3 + 3], background, strict=True)) > 150
    )
    assert inked > 500, f"the table's region of {shot} looks blank ({inked} dark pixels)"
    # The DOM agrees: caption, header cells and this job's row.
    expect(table.locator("caption")).to_have_text("Your jobs, newest first")
    expect(table.locator("thead th")).to_have_count(8)
    expect(row(page, job_id)).to_be_visible()
