"""One callback delivery message: check the URL again, POST the signed event, record the attempt on the job, and
queue the retry (SQS message delays, chained past 15 min) until a 2xx answer or the end of the retry window.

Runs apart from job execution (the callback Lambda on AWS, runtime/callbacks/consumer.py on Kubernetes and locally),
so an endpoint that hangs holds a delivery for at most its timeout and never a worker's job thread."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Protocol

from runtime.adapters.sqs_callback_queue import MAX_DELAY_S
from runtime.api.schemas import job_document
from runtime.callbacks.addresses import CallbackTarget, CallbackUrlPolicy, UnsafeCallbackUrl
from runtime.domain.callbacks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    CallbackState,
    RetrySchedule,
    event_id,
    event_name,
    signature_header,
)
from runtime.domain.job import Job
from runtime.domain.ports import CallbackMessage, CallbackQueue, Clock, JobStore
from runtime.observability import logs, metrics
from runtime.observability.names import LogEvent, Metric

USER_AGENT = "job-tickets-callbacks/1"
# A hop arriving this little before its time is delivered: SQS delays are whole seconds.
_EARLY_TOLERANCE_S = 1

# target, body, headers -> the answer's status code, or None without a complete answer in time.
Poster = Callable[[CallbackTarget, bytes, Mapping[str, str]], int | None]


class WebhookSecrets(Protocol):
    def get_webhook_secret(self, tenant: str) -> str | None: ...


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # failed; the next attempt is queued
    FAILED = "failed"  # failed for the whole window; the callback is failed
    HOP = "hop"  # not due yet: sent on with the rest of its delay
    SKIPPED = "skipped"  # the event is over (delivered or failed already, the job retried by hand, gone)


class CallbackDeliverer:
    def __init__(
        self,
        *,
        store: JobStore,
        queue: CallbackQueue,
        secrets: WebhookSecrets,
        policy: CallbackUrlPolicy,
        poster: Poster,
        schedule: RetrySchedule,
        clock: Clock,
    ) -> None:
        self._store = store
        self._queue = queue
        self._secrets = secrets
        self._policy = policy
        self._poster = poster
        self._schedule = schedule
        self._clock = clock

    def deliver(self, message: CallbackMessage) -> DeliveryOutcome:
        """Store and queue errors raise: the message then comes back (SQS) and the attempt is made again."""
        now_s = self._clock.now().timestamp()
        if message.not_before is not None and message.not_before - now_s > _EARLY_TOLERANCE_S:
            hop_s = min(MAX_DELAY_S, math.ceil(message.not_before - now_s))
            self._queue.send(message, delay_s=hop_s)
            logs.log_event(LogEvent.CALLBACK_HOP, delayS=hop_s, notBefore=message.not_before)
            return DeliveryOutcome.HOP
        job = self._store.get(message.job_id)
        if job is None or not job.is_terminal or job.callback is None or event_id(job) != message.event_id:
            logs.log_event(LogEvent.CALLBACK_SKIPPED, reason="superseded", found=job is not None)
            return DeliveryOutcome.SKIPPED
        if job.callback.state is not CallbackState.PENDING:
            logs.log_event(LogEvent.CALLBACK_SKIPPED, reason=job.callback.state.value)
            return DeliveryOutcome.SKIPPED

        first_attempt_at = message.first_attempt_at if message.first_attempt_at is not None else int(now_s)
        status_code = self._attempt(job, message.event_id, now_s)
        delivered = status_code is not None and 200 <= status_code < 300
        if delivered:
            state = CallbackState.DELIVERED
        elif self._schedule.gives_up(first_attempt_s=first_attempt_at, now_s=now_s):
            state = CallbackState.FAILED
        else:
            state = CallbackState.PENDING
        entered_at = job.transitions[job.status.value]
        updated = self._store.record_callback_attempt(
            job.job_id, status=job.status, entered_at=entered_at, state=state, status_code=status_code
        )
        if updated is None or updated.callback is None:
            # A duplicate message decided it first, or the job was retried by hand meanwhile.
            logs.log_event(LogEvent.CALLBACK_SKIPPED, reason="decided_meanwhile", statusCode=status_code)
            return DeliveryOutcome.SKIPPED
        attempts = updated.callback.attempts
        delay: int | None = None
        if state is CallbackState.PENDING:
            delay = self._schedule.delay_s(attempts)
            not_before = int(now_s) + delay if delay > MAX_DELAY_S else None
            self._queue.send(
                CallbackMessage(
                    job_id=job.job_id,
                    event_id=message.event_id,
                    trace_id=job.trace_id,
                    not_before=not_before,
                    first_attempt_at=first_attempt_at,
                ),
                delay_s=min(MAX_DELAY_S, delay),
            )
        outcome = {
            CallbackState.DELIVERED: DeliveryOutcome.DELIVERED,
            CallbackState.PENDING: DeliveryOutcome.RETRY,
            CallbackState.FAILED: DeliveryOutcome.FAILED,
        }[state]
        metric = {
            DeliveryOutcome.DELIVERED: Metric.CALLBACKS_DELIVERED,
            DeliveryOutcome.RETRY: Metric.CALLBACK_ATTEMPTS_FAILED,
            DeliveryOutcome.FAILED: Metric.CALLBACKS_FAILED,
        }[outcome]
        metrics.emit({metric: (1.0, "Count")})
        logs.log_event(
            LogEvent.CALLBACK_ATTEMPT,
            level="info" if delivered else "warning",
            outcome=outcome.value,
            statusCode=status_code,
            attempts=attempts,
            retryInS=delay,
        )
        return outcome

    def _attempt(self, job: Job, event: str, now_s: float) -> int | None:
        """One POST of the event; its status code, or None when there was no answer (or no POST could be made)."""
        assert job.callback is not None
        try:
            # Checked again now: the name may resolve elsewhere than at submit. The POST goes to this address.
            target = self._policy.check(job.callback.url)
        except UnsafeCallbackUrl as exc:
            logs.log_event(LogEvent.CALLBACK_REFUSED, level="warning", reason=str(exc))
            return None
        secret = self._secrets.get_webhook_secret(job.tenant)
        if secret is None:
            # Nothing to sign with: never send an unsigned event. Retried: `webhooks rotate-secret` sets one.
            logs.log_event(LogEvent.CALLBACK_REFUSED, level="warning", reason="tenant has no webhook secret")
            return None
        body = json.dumps(
            {"event": event_name(job.status), "job": job_document(job)}, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: event,
            SIGNATURE_HEADER: signature_header(secret, int(now_s), body),
        }
        return self._poster(target, body, headers)
