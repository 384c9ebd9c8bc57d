"""The API as a Lambda function behind API Gateway or a function URL (Mangum); the app is built on first use."""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from runtime.observability import tracing

_handler: Mangum | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _handler
    if _handler is None:
        from runtime.api.app import create_app
        from runtime.settings import get_settings

        # One request at a time per execution environment: nothing to coalesce sends with, so no linger.
        _handler = Mangum(create_app(get_settings().model_copy(update={"send_linger_s": 0.0})), lifespan="off")
    try:
        return dict(_handler(event, context))
    finally:
        # Lambda may freeze the environment once the handler returns: spans waiting in the batch go out now.
        tracing.flush()
