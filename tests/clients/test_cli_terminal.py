"""`jobtickets submit --wait` in a real terminal (tmux), against the local all-in-one: the screen shows one live line
(status, a bar, the percentage and the handler's message) redrawn in place, then the outcome line. The worker is
held while the job is submitted, so the line's waiting state is on screen for as long as the test needs."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobtickets import cli
from tests.clients.jobs import report_params
from tests.clients.worker_pause import paused_worker
from tests.e2e.local_system import LocalSystem

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by `make install` (system-deps)"),
]

CONSOLE_SCRIPT = Path(sys.executable).parent / "jobtickets"
BAR_LINE = re.compile(rf"^(?P<status>[A-Z_]+) +\[(?P<bar>[#-]{{{cli.BAR_WIDTH}}})\] +(?P<percent>\d+%|--)")


class Terminal:
    """A detached tmux session on its own server socket, 120x30, running a plain shell."""

    def __init__(self) -> None:
        self.socket = f"jobtickets-test-{uuid.uuid4().hex[:8]}"
        self.tmux("new-session", "-d", "-s", "cli", "-x", "120", "-y", "30", "env PS1='$ ' bash --norc --noprofile")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=10
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def type(self, command: str) -> None:
        self.tmux("send-keys", "-t", "cli", command, "Enter")

    def screen(self) -> list[str]:
        return [line.rstrip() for line in self.tmux("capture-pane", "-p", "-t", "cli").splitlines()]

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


def wait_for_screen(terminal: Terminal, done: Callable[[list[str]], bool], timeout_s: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        screen = terminal.screen()
        if done(screen):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError("the screen never showed what was expected:\n" + "\n".join(screen))
        time.sleep(0.05)  # how often the screen is read, not a stand-in for the job's work


def bar_lines(screen: list[str]) -> list[re.Match[str]]:
    return [match for line in screen if (match := BAR_LINE.match(line))]


def test_submit_wait_draws_a_live_progress_line_in_a_terminal(system: LocalSystem, terminal: Terminal) -> None:
    env = f"{cli.URL_ENV}={shlex.quote(system.api_url)} {cli.API_KEY_ENV}={shlex.quote(system.api_key)}"
    params = shlex.quote(json.dumps(report_params(system, uuid.uuid4().hex)))
    with paused_worker(system):
        terminal.type(f"{env} {CONSOLE_SCRIPT} submit --type generate_report --params {params} --wait; echo exit=$?")
        # The job waits PENDING while the worker is held: the live line shows it, with an empty bar.
        waiting = wait_for_screen(terminal, lambda screen: bool(bar_lines(screen)))
    [pending] = bar_lines(waiting)
    assert pending["status"] == "PENDING" and pending["bar"] == "-" * cli.BAR_WIDTH and pending["percent"] == "--"
    final = wait_for_screen(terminal, lambda screen: any(line.startswith("exit=") for line in screen))
    assert "exit=0" in final, "\n".join(final)
    [submitted] = [line for line in final if line.startswith("submitted ")]
    job_id = submitted.split()[1]
    # Still one bar line: the same line was redrawn in place (carriage return), not a new line per update; it ends
    # full, with the handler's last progress message.
    [bar] = bar_lines(final)
    assert bar["status"] == "SUCCEEDED" and bar["bar"] == "#" * cli.BAR_WIDTH and bar["percent"] == "100%"
    assert bar.string.endswith("100%  report written"), bar.string
    assert final.index(bar.string) == waiting.index(pending.string)
    [outcome] = [line for line in final if line.startswith("job ")]
    assert re.fullmatch(rf"job {job_id} SUCCEEDED after \d+\.\d s \(attempts 1\)", outcome), outcome
    assert final.index(submitted) < final.index(bar.string) < final.index(outcome)
