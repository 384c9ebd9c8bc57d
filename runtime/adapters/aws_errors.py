"""How the adapters read AWS client errors: the error code, and which failures mean that the service is not
answering (an outage the caller reports as its own "unavailable" error) rather than that it refused a request."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

# DynamoDB codes that mean "the table is not answering" rather than "we sent a bad request".
DYNAMODB_UNAVAILABLE_CODES = frozenset(
    {
        "ResourceNotFoundException",  # the table is missing: not ready
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)
# SQS codes that mean "the queue is not answering" (missing or throttling) rather than "we sent a bad request".
SQS_UNAVAILABLE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "ThrottlingException", "RequestThrottled"}
)


def error_code(exc: ClientError) -> str:
    """The service's error code ("" when the answer carries none)."""
    return exc.response.get("Error", {}).get("Code", "")


def condition_failed(exc: ClientError) -> bool:
    """A DynamoDB conditional write refused because its condition did not hold."""
    return error_code(exc) == "ConditionalCheckFailedException"


@contextmanager
def outages_as(unavailable: Callable[[str], Exception], call: str, codes: Collection[str]) -> Iterator[None]:
    """Raises `unavailable("<call> failed: <why>")` for an outage: an error code in `codes`, a 5xx answer, or no
    answer at all (a BotoCoreError: connection, timeout); other client errors pass unchanged."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in codes or status >= 500:
            raise unavailable(f"{call} failed: {code or status}") from exc
        raise
    except BotoCoreError as exc:
        raise unavailable(f"{call} failed: {exc}") from exc
