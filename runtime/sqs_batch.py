"""How the SQS-triggered Lambdas run a batch: each record through the handler, the failed ones reported back as
batch item failures so SQS delivers them again (the others are deleted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from runtime.observability import aws_calls


def process_records(
    event: dict[str, Any], context: Any, record_handler: Callable[[SQSRecord], str], *, category: str
) -> dict[str, Any]:
    """Runs every record, its AWS calls counted under `category`; returns {"batchItemFailures": [...]} naming the
    records to be retried."""
    # raise_on_entire_batch_failure=False: with batch size 1 every failure is an "entire batch" failure;
    # reporting it as a batch item failure keeps one behaviour for any batch size.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with aws_calls.category(category):
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    return dict(response)
