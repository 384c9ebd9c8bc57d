"""The worker: a receive loop (10 messages whenever a slot is free, from the per-priority queues by weighted
polling: runtime/adapters/priority_queue.py) with the lazy claim's one read of each receive's fresh jobs, a pool of
job threads, the visibility heartbeat, the lazy claimer (fresh jobs the read shows PENDING run unclaimed and are
claimed only past Settings.lazy_claim_after_s: runtime/domain/lazy_claim.py), the
progress writer, batched deletes, the republisher, the task's scale-in protection (on ECS), and a graceful stop.
Usable in-process by tests."""

from __future__ import annotations

import dataclasses
import queue as queue_module
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from runtime.callbacks.outbox import CallbackOutbox
from runtime.domain.backoff import Backoff, Jitter
from runtime.domain.hold import Hold
from runtime.domain.job import Job
from runtime.domain.lazy_claim import JobRead
from runtime.domain.ports import (
    QUEUE_BATCH_LIMIT,
    CallbackQueue,
    Clock,
    JobMessage,
    JobQueue,
    JobStore,
    ObjectStore,
    ReceivedMessage,
    UtcClock,
)
from runtime.domain.processing import (
    Action,
    Decision,
    MessageProcessor,
    Outcome,
    ProcessingConfig,
)
from runtime.domain.schedule import DelayWindow
from runtime.domain.stats import QueueDepthReader
from runtime.job_types.confinement import Confinement
from runtime.job_types.registry import JobType, get_job_type
from runtime.observability import aws_calls, logs, metrics, tracing
from runtime.observability.names import JOB_TYPE_DIMENSION, LogEvent, Metric
from runtime.settings import Settings
from runtime.worker.claimer import LazyClaimer
from runtime.worker.deleter import BatchDeleter
from runtime.worker.heartbeat import Heartbeat
from runtime.worker.liveness import IDLE_BEAT_S, Liveness
from runtime.worker.progress import ProgressWriter
from runtime.worker.republisher import Republisher
from runtime.worker.task_protection import TaskProtection

# After a failed receive, wait this long (doubling up to the cap) before polling again.
RECEIVE_RETRY_BASE_S = 1.0
RECEIVE_RETRY_MAX_S = 20.0
# How long stop() waits for a long poll already under way. A message it returns later is not claimed
# and comes back after the visibility timeout: a delay, never a loss. Waiting the full 20 s on every
# shutdown would be worse.
RECEIVE_JOIN_S = 2.0
_OUTCOME_METRIC = {
    Outcome.SUCCEEDED: Metric.JOBS_SUCCEEDED,
    Outcome.FAILED: Metric.JOBS_FAILED,
    Outcome.FAILED_FINAL: Metric.JOBS_FAILED_FINAL,
    Outcome.CANCELED: Metric.JOBS_CANCELED,
}


class Worker:
    """start() runs the threads; stop(deadline_s) stops receiving, waits for running jobs up to the
    deadline, releases unfinished ones (`_release`: neither an attempt nor a receive is spent), and returns True if
    none was left."""

    def __init__(
        self,
        *,
        store: JobStore,
        queue: JobQueue,
        objects: ObjectStore,
        settings: Settings,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
        job_types: Callable[[str], JobType[Any] | None] = get_job_type,
        republish: bool = True,
        liveness: Liveness | None = None,
        callback_queue: CallbackQueue | None = None,
        queue_depths: QueueDepthReader | None = None,
    ) -> None:
        self._store = store
        # Touched as the receive loop turns (the container's health check reads it); None: no file at all.
        self._liveness = liveness
        self._queue = queue
        self._settings = settings
        self._clock: Clock = clock or UtcClock()
        self._concurrency = settings.worker_concurrency
        self._progress = ProgressWriter(store=store, clock=self._clock, interval_s=settings.progress_interval_s)
        # 0 turns lazy claims off: every job is claimed before it runs.
        self._claimer = LazyClaimer(after_s=settings.lazy_claim_after_s) if settings.lazy_claim_after_s > 0 else None
        # Terminal jobs with a callback are handed to the callback queue (their delivery runs elsewhere).
        outbox = (
            CallbackOutbox(store=store, queue=callback_queue, clock=self._clock) if callback_queue is not None else None
        )
        self._processor = MessageProcessor(
            store=store,
            objects=objects,
            confinement=Confinement(settings.documents_bucket),
            config=ProcessingConfig(
                visibility_timeout_s=settings.visibility_timeout_s,
                max_attempts=settings.max_attempts,
                delay_window_s=settings.schedule_delay_window_s,
            ),
            backoff=Backoff(settings.backoff_base_s, settings.backoff_max_s, Jitter.EQUAL, rand),
            clock=self._clock,
            job_types=job_types,
            progress=self._progress,
            on_callback_due=(
                (lambda job, status, now: outbox.enqueue(job, status=status, entered_at=now))
                if outbox is not None
                else None
            ),
            claimer=self._claimer,
        )
        # Only on ECS, where the agent's endpoint exists; elsewhere no thread and no request at all.
        self._protection = (
            TaskProtection(settings.ecs_agent_uri, heartbeat_interval_s=settings.heartbeat_interval_s)
            if settings.ecs_agent_uri
            else None
        )
        self._heartbeat = Heartbeat(
            queue=queue,
            store=store,
            clock=self._clock,
            visibility_timeout_s=settings.visibility_timeout_s,
            interval_s=settings.heartbeat_interval_s,
            lease_interval_s=settings.cancel_check_interval_s,
            on_beat=self._protection.beat if self._protection is not None else None,
        )
        self._deleter = BatchDeleter(queue, linger_s=settings.delete_linger_s)
        self._republisher = (
            Republisher(
                store=store,
                queue=queue,
                clock=self._clock,
                republish_after_s=settings.republish_after_s,
                interval_s=settings.republish_interval_s,
                delay_window=DelayWindow(settings.schedule_delay_window_s),
                rand=rand,
                callbacks=outbox,
                depths=queue_depths,
                backlog_after_s=settings.republish_backlog_after_s,
            )
            if republish
            else None
        )
        self._tasks: queue_module.Queue[ReceivedMessage | None] = queue_module.Queue()
        self._slots = threading.Condition()
        self._in_flight = 0
        self._released: set[str] = set()
        # Every message held (waiting or running), with the hold its job thread writes under (runtime/domain/hold.py).
        self._held: dict[str, tuple[ReceivedMessage, Hold]] = {}
        # What the read after its receive found of a waiting message's job (lazy claim), until a job thread takes it.
        self._reads: dict[str, JobRead] = {}
        self._stopping = threading.Event()
        self._receiver: threading.Thread | None = None
        self._pool: list[threading.Thread] = []
        self._started = False

    @property
    def in_flight(self) -> int:
        with self._slots:
            return self._in_flight

    def start(self) -> None:
        if self._started:
            raise RuntimeError("worker already started")
        self._started = True
        if self._protection is not None:
            self._protection.start()
        # Daemon threads: a job still running when stop() gives up must not hold the process open; it was
        # released (handed back, a fresh message published), so another worker takes it over at once.
        for index in range(self._concurrency):
            thread = threading.Thread(target=self._pool_loop, name=f"job-{index}", daemon=True)
            thread.start()
            self._pool.append(thread)
        self._heartbeat.start()
        if self._claimer is not None:
            self._claimer.start()
        self._progress.start()
        if self._republisher is not None:
            self._republisher.start()
        self._receiver = threading.Thread(target=self._receive_loop, name="receiver", daemon=True)
        self._receiver.start()
        logs.log_event(LogEvent.WORKER_STARTED, concurrency=self._concurrency)

    def stop(self, deadline_s: float | None = None) -> bool:
        deadline_s = self._settings.shutdown_deadline_s if deadline_s is None else deadline_s
        ends_at = time.monotonic() + deadline_s
        self._stopping.set()
        returned = self._release_waiting()
        with self._slots:
            self._slots.notify_all()
            while self._in_flight > 0:
                remaining = ends_at - time.monotonic()
                if remaining <= 0:
                    break
                self._slots.wait(remaining)
        unfinished = self._release_unfinished()
        for _ in self._pool:
            self._tasks.put(None)
        self._heartbeat.stop()
        if self._claimer is not None:
            self._claimer.stop()
        self._progress.stop()
        if self._protection is not None:
            # Unfinished jobs were released above: nothing here is worth protecting any more.
            self._protection.stop()
        if self._republisher is not None:
            self._republisher.stop()
        if self._receiver is not None:
            self._receiver.join(max(0.0, min(RECEIVE_JOIN_S, ends_at - time.monotonic())))
        self._deleter.stop()
        logs.log_event(LogEvent.WORKER_STOPPED, released=unfinished, returned=returned or None)
        return unfinished == 0

    def _release_waiting(self) -> int:
        """Gives back the prefetched messages no job thread has started: others can take them at once."""
        waiting: list[ReceivedMessage] = []
        while True:
            try:
                message = self._tasks.get_nowait()
            except queue_module.Empty:
                break
            if message is not None:
                waiting.append(message)
        if not waiting:
            return 0
        for message in waiting:
            self._heartbeat.untrack(message.receipt_handle)
        with self._slots:
            holds = [self._held.pop(message.receipt_handle, (message, Hold()))[1] for message in waiting]
            for message in waiting:
                self._reads.pop(message.receipt_handle, None)
        self._release(list(zip(waiting, holds, strict=True)))
        with self._slots:
            self._change_held(-len(waiting))
        return len(waiting)

    def _release_unfinished(self) -> int:
        handles = self._heartbeat.receipt_handles()
        if not handles:
            return 0
        with self._slots:
            self._released.update(handles)
            unfinished = [self._held[handle] for handle in handles if handle in self._held]
        for handle in handles:
            self._heartbeat.untrack(handle)
        self._release(unfinished)
        return len(handles)

    def _release(self, messages: Sequence[tuple[ReceivedMessage, Hold]]) -> None:
        """Gives messages back unfinished (shutdown, drain, scale-in) without costing their jobs an attempt or a
        receive towards the DLQ: a claimed job's attempt is handed back (one conditional write: lease over,
        attempts as before the claim), a fresh copy of each message goes to the same queue with the same trace
        header, then the old one is deleted. Publish before delete: dying in between leaves a duplicate, which
        the conditional claim makes a no-op; dying before the publish leaves the old message, back after its
        visibility timeout. A message that could not be published, or is no job message, goes back the old way
        (visibility 0)."""
        if not messages:
            return
        with aws_calls.category("worker"):
            for message, hold in messages:
                with hold.releasing() as attempt:
                    if attempt is not None and message.message is not None:
                        self._hand_back(message.message.job_id, attempt)
            # A submit's copy stays one: its next worker's read shows the job as the hand-back left it (a job handed
            # back is claimed first, runtime/domain/lazy_claim.py).
            jobs = [(message, message.message) for message, _ in messages if message.message is not None]
            unsent = self._queue.send_many(
                [dataclasses.replace(job, trace_header=message.trace_header) for message, job in jobs]
            )
            republished = [message.receipt_handle for index, (message, _) in enumerate(jobs) if index not in unsent]
            returned = [message.receipt_handle for index, (message, _) in enumerate(jobs) if index in unsent]
            returned += [message.receipt_handle for message, _ in messages if message.message is None]
            for start in range(0, len(republished), QUEUE_BATCH_LIMIT):
                try:
                    self._queue.delete_batch(republished[start : start + QUEUE_BATCH_LIMIT])
                except Exception as exc:  # noqa: BLE001 - the old copy comes back later: a duplicate, a no-op
                    logs.log_event(LogEvent.RELEASE_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")
            if unsent:
                logs.log_event(LogEvent.RELEASE_FAILED, level="warning", error=f"{len(unsent)} copies not published")
            for start in range(0, len(returned), QUEUE_BATCH_LIMIT):
                try:
                    self._queue.change_visibility_batch(returned[start : start + QUEUE_BATCH_LIMIT], 0)
                except Exception as exc:  # noqa: BLE001 - unreleased messages come back after the visibility timeout
                    logs.log_event(LogEvent.RELEASE_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")

    def _hand_back(self, job_id: str, attempt: int) -> None:
        try:
            released = self._store.release(job_id, attempt=attempt, now=self._clock.now())
        except Exception as exc:  # noqa: BLE001 - the lease then runs out and the next claim takes over (one attempt)
            logs.log_event(LogEvent.RELEASE_FAILED, level="warning", jobId=job_id, error=f"{type(exc).__name__}: {exc}")
            return
        # Refused: the attempt's outcome was recorded first, or someone else decided the job; nothing to hand back.
        logs.log_event(LogEvent.JOB_RELEASED, jobId=job_id, attempt=attempt, handedBack=released)

    def _receive_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._beat()
            with self._slots:
                # Held = running + waiting in the task queue. Asking for a full batch as soon as one slot is
                # free keeps receives near one per ten jobs (min(10, free) fetched one at a time under load);
                # at most concurrency + 9 messages are held, all tracked by the heartbeat (plus 10 per further
                # queue when an idle worker's long polls on the priority queues all return at once).
                while self._in_flight >= self._concurrency and not self._stopping.is_set():
                    # Waiting for a free slot is the loop still turning: it shows so every IDLE_BEAT_S.
                    self._slots.wait(IDLE_BEAT_S)
                    self._beat()
            if self._stopping.is_set():
                return
            try:
                with aws_calls.category("worker"):
                    received = self._queue.receive(
                        max_messages=QUEUE_BATCH_LIMIT,
                        wait_s=self._settings.receive_wait_s,
                        visibility_timeout_s=self._settings.visibility_timeout_s,
                    )
            except Exception as exc:  # noqa: BLE001 - keep polling; the queue may come back
                failures += 1
                logs.log_event(LogEvent.RECEIVE_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")
                self._stopping.wait(min(RECEIVE_RETRY_MAX_S, RECEIVE_RETRY_BASE_S * 2 ** min(failures - 1, 10)))
                continue
            failures = 0
            if self._stopping.is_set():
                self._release([(message, Hold()) for message in received])
                return
            reads = self._read_jobs(received)
            for message in received:
                with self._slots:
                    self._held[message.receipt_handle] = (message, Hold())
                    if message.receipt_handle in reads:
                        self._reads[message.receipt_handle] = reads[message.receipt_handle]
                    self._change_held(+1)
                self._heartbeat.track(message.receipt_handle, message.message.job_id if message.message else None)
                self._tasks.put(message)

    def _read_jobs(self, received: Sequence[ReceivedMessage]) -> dict[str, JobRead]:
        """The lazy claim's one read of this receive's jobs (runtime/domain/lazy_claim.py); {} when it failed: the
        jobs are then claimed first, never run without knowing their state."""
        if not received:
            return {}
        try:
            with aws_calls.category("worker"):
                return self._processor.read_jobs(received)
        except Exception as exc:  # noqa: BLE001 - the claim-first path reads each job in its claim instead
            logs.log_event(LogEvent.LAZY_READ_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")
            return {}

    def _beat(self) -> None:
        if self._liveness is not None:
            self._liveness.beat()

    def _pool_loop(self) -> None:
        while True:
            message = self._tasks.get()
            if message is None:
                return
            try:
                self._handle(message)
            except Exception as exc:  # noqa: BLE001 - a bug here must not kill the pool thread
                logs.log_event(LogEvent.WORKER_ERROR, level="error", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._heartbeat.untrack(message.receipt_handle)
                with self._slots:
                    self._held.pop(message.receipt_handle, None)
                    self._change_held(-1)

    def _change_held(self, delta: int) -> None:
        """Counts messages held (running or waiting); call with self._slots held. The protection hears of
        0 -> busy and busy -> 0 under the same lock, so two threads cannot report them out of order."""
        before = self._in_flight
        self._in_flight += delta
        self._slots.notify_all()
        if self._protection is not None:
            if before == 0 and self._in_flight > 0:
                self._protection.busy()
            elif before > 0 and self._in_flight == 0:
                self._protection.idle()

    def _handle(self, message: ReceivedMessage) -> None:
        job_message = message.message
        handle = message.receipt_handle
        # Queue lag ends when a worker picks the message up, not when its job is done.
        queue_lag_ms = max(0.0, (datetime.now(UTC) - message.sent_at).total_seconds() * 1000.0)

        def on_claimed(job: Job) -> None:
            # On the job thread, or the lazy claimer's past the threshold: only thread-safe bookkeeping here.
            self._heartbeat.claimed(handle, job.attempts)

        with (
            logs.bind(
                trace_id=job_message.trace_id if job_message else None,
                job_id=job_message.job_id if job_message else None,
            ),
            aws_calls.category("worker"),
            tracing.continue_trace(
                "worker.job", message.trace_header, trace_id=job_message.trace_id if job_message else None
            ),
        ):
            with self._slots:
                hold = self._held[handle][1] if handle in self._held else Hold()
                read = self._reads.pop(handle, None)
            decision = self._processor.process(
                message, on_claimed=on_claimed, cancel_flag=self._heartbeat.cancel_flag(handle), hold=hold, read=read
            )
            if decision.job is not None:
                # Claimed first or run unclaimed, the job's span says which job it was.
                tracing.annotate(jobId=decision.job.job_id, jobType=decision.job.job_type)
            with self._slots:
                released = handle in self._released or decision.outcome is Outcome.RELEASED
            if not released:
                # Out of the heartbeat first: a beat between the two would reset the visibility this decision sets
                # (a retry's backoff, a kept message's delay) to the full timeout.
                self._heartbeat.untrack(handle)
                self._apply(handle, decision)
            self._report(message, decision, released=released, queue_lag_ms=queue_lag_ms)

    def _apply(self, handle: str, decision: Decision) -> None:
        if decision.action is Action.DELETE:
            self._deleter.add(handle)
            return
        if (
            decision.action is Action.REPUBLISH
            and decision.job is not None
            and self._put_back(handle, JobMessage.for_job(decision.job, delay_s=decision.delay_s))
        ):
            return
        # Otherwise (a put-back not sent too) the message comes back after the delay (one more receive counted).
        try:
            self._queue.change_visibility(handle, decision.delay_s)
        except Exception as exc:  # noqa: BLE001 - the message comes back after the visibility timeout instead
            logs.log_event(LogEvent.VISIBILITY_CHANGE_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")

    def _put_back(self, handle: str, fresh: JobMessage) -> bool:
        """Sends `fresh` first, then deletes the received message: the job is never without a message, and the
        fresh one starts with no receives (the redrive limit is not spent on waiting). False when not sent."""
        try:
            self._queue.send(fresh)
        except Exception as exc:  # noqa: BLE001 - the caller falls back to a visibility change
            logs.log_event(
                LogEvent.REPUBLISH_FAILED, level="warning", jobId=fresh.job_id, error=f"{type(exc).__name__}: {exc}"
            )
            return False
        self._deleter.add(handle)
        return True

    def _report(self, message: ReceivedMessage, decision: Decision, *, released: bool, queue_lag_ms: float) -> None:
        job = decision.job
        metric_name = _OUTCOME_METRIC.get(decision.outcome)
        if metric_name is not None and job is not None:
            values: dict[Metric, tuple[float, str]] = {
                metric_name: (1.0, "Count"),
                Metric.QUEUE_LAG: (round(queue_lag_ms, 1), "Milliseconds"),
            }
            if decision.handler_ms is not None:
                values[Metric.JOB_DURATION] = (round(decision.handler_ms, 1), "Milliseconds")
            metrics.emit(values, dimensions={JOB_TYPE_DIMENSION: job.job_type})
        level = "info"
        if decision.outcome in (Outcome.POISON, Outcome.MISSING, Outcome.LOST_CLAIM, Outcome.STORE_UNAVAILABLE):
            level = "warning"
        if decision.error_detail is not None:
            level = "warning"  # an unexpected handler exception: its text is only here
        error = decision.error
        logs.log_event(
            LogEvent.JOB_MESSAGE,
            level=level,
            outcome=decision.outcome.value,
            action="released" if released else decision.action.value,
            delayS=decision.delay_s or None,
            status=job.status.value if job is not None and decision.attempt is None else None,
            jobType=job.job_type if job is not None else None,
            attempt=decision.attempt,
            receiveCount=message.receive_count,
            handlerMs=round(decision.handler_ms, 1) if decision.handler_ms is not None else None,
            queueLagMs=round(queue_lag_ms),
            errorCode=error.code if error is not None else None,
            error=error.message if error is not None else None,
            errorDetail=decision.error_detail,
            body=message.raw_body[:200] if decision.outcome is Outcome.POISON else None,
        )
