"""The start every long-running process shares (`python -m runtime.worker`, the local DLQ poller): settings
loaded and observability configured, SIGTERM and SIGINT turned into a graceful stop."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType

from runtime import observability
from runtime.settings import Settings, SettingsError, load_settings

# A bad setting is a usage error, as for a bad command-line argument.
BAD_SETTINGS_EXIT = 2


def configured_settings() -> Settings | None:
    """The settings with observability configured; None when they do not load (the reason on stderr)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return None
    observability.configure(settings)
    return settings


def on_stop_signals(handler: Callable[[int, FrameType | None], None]) -> None:
    """`handler` runs on SIGTERM (ECS, Kubernetes stopping the task) and SIGINT (Ctrl-C)."""
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
