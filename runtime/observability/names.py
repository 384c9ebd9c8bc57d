"""Every metric and log event name the runtime emits, defined once. The runtime emits these and
stacks/components/monitoring.py builds its dashboard from them, so renaming a metric here renames both
(tests/infra/test_monitoring_and_checks.py checks that the dashboard asks for nothing the runtime does not emit).
"""

from __future__ import annotations

from enum import StrEnum

# The CloudWatch namespace of every EMF metric (Settings.metrics_namespace defaults to it; the stacks search it).
METRICS_NAMESPACE = "JobTickets"

# The dimensions every emit carries (Service) or may add (JobType); the dashboard's searches select on Service.
SERVICE_DIMENSION = "Service"
JOB_TYPE_DIMENSION = "JobType"


class Metric(StrEnum):
    """EMF metric names (CloudWatch's PascalCase)."""

    JOBS_CREATED = "JobsCreated"  # API: a new job was stored
    JOBS_SUCCEEDED = "JobsSucceeded"  # worker
    JOBS_FAILED = "JobsFailed"  # worker: an attempt failed and will be retried
    JOBS_FAILED_FINAL = "JobsFailedFinal"  # worker (last attempt, permanent error) and the DLQ handler
    JOBS_CANCELED = "JobsCanceled"  # API (a PENDING or FAILED job canceled at once) and worker (cancel noticed)
    JOBS_REDRIVEN = "JobsRedriven"  # DLQ handler: a dead letter of a job with attempts left, published afresh
    JOB_DURATION = "JobDuration"  # worker: the handler's run time, milliseconds
    QUEUE_LAG = "QueueLag"  # worker: from the message's send to its receive, milliseconds
    TASK_PROTECTION_FAILURES = "TaskProtectionFailures"  # worker: the ECS agent refused or did not answer
    CALLBACKS_DELIVERED = "CallbacksDelivered"  # callback delivery: a 2xx answer
    CALLBACK_ATTEMPTS_FAILED = "CallbackAttemptsFailed"  # callback delivery: no 2xx answer, retried later
    CALLBACKS_FAILED = "CallbacksFailed"  # callback delivery: given up after the retry window


class LogEvent(StrEnum):
    """The `event` field of the JSON log lines: snake_case, the subject first (job_created, worker_started)."""

    LOG = "log"  # a stdlib logging record (uvicorn, botocore), formatted as our JSON

    # API
    JOB_CREATED = "job_created"
    JOB_PUBLISH_FAILED = "job_publish_failed"
    JOB_REPLAYED = "job_replayed"
    JOB_REJECTED = "job_rejected"
    JOB_RETRIED = "job_retried"
    JOB_CANCEL = "job_cancel"  # a cancel answered: the job's status after it and whether it is done
    JOB_KEY_REUSED = "job_key_reused"
    JOB_IN_FLIGHT = "job_in_flight"
    JOB_STORE_UNAVAILABLE = "job_store_unavailable"
    HTTP_UNHANDLED_ERROR = "http_unhandled_error"
    HTTP_HEADER_TIMEOUT = "http_header_timeout"
    HTTP_BODY_TIMEOUT = "http_body_timeout"
    HTTP_CLIENT_DISCONNECTED = "http_client_disconnected"
    HTTP_REQUEST_SHED = "http_request_shed"  # refused at once: max_in_flight_requests were being handled
    HTTP_DEADLINE_EXCEEDED = "http_deadline_exceeded"  # answered 503 at the deadline; its handling goes on
    READINESS_FAILED = "readiness_failed"
    STATS_UNAVAILABLE = "stats_unavailable"  # GET /api/v1/stats could not read the queue depth
    AUTH_REFUSED = "auth_refused"
    AUTH_UNAVAILABLE = "auth_unavailable"
    SEND_BATCH_FAILED = "send_batch_failed"

    # Worker
    WORKER_STARTING = "worker_starting"
    WORKER_STARTED = "worker_started"
    WORKER_SIGNAL = "worker_signal"
    WORKER_STOPPED = "worker_stopped"
    WORKER_ERROR = "worker_error"
    WORKER_LIVENESS_FAILED = "worker_liveness_failed"  # the liveness file cannot be written: the health check fails
    JOB_MESSAGE = "job_message"
    RECEIVE_FAILED = "receive_failed"
    RELEASE_FAILED = "release_failed"
    JOB_RELEASED = "job_released"  # a release handed a claimed job's attempt back (or found it decided already)
    DELETE_FAILED = "delete_failed"
    VISIBILITY_CHANGE_FAILED = "visibility_change_failed"
    HEARTBEAT_VISIBILITY_FAILED = "heartbeat_visibility_failed"
    HEARTBEAT_LEASE_FAILED = "heartbeat_lease_failed"
    LEASE_LOST = "lease_lost"
    CANCEL_NOTICED = "cancel_noticed"  # a lease renewal found the job's cancel requested
    # An attempt run unclaimed outlived the threshold (runtime/worker/claimer.py): its claim and how it went.
    LAZY_CLAIMED = "lazy_claimed"
    LAZY_CLAIM_FAILED = "lazy_claim_failed"  # the store did not answer; tried again later
    # The read after a receive failed (runtime/domain/lazy_claim.py): that receive's jobs are all claimed first.
    LAZY_READ_FAILED = "lazy_read_failed"
    PROGRESS_WRITE_FAILED = "progress_write_failed"  # the store did not answer; the job goes on
    PROGRESS_WRITE_REFUSED = "progress_write_refused"  # the job is no longer this attempt's
    JOB_REPUBLISHED = "job_republished"
    REPUBLISH_FAILED = "republish_failed"
    REPUBLISH_SWEEP_FAILED = "republish_sweep_failed"
    TASK_PROTECTION_SET = "task_protection_set"
    TASK_PROTECTION_FAILED = "task_protection_failed"

    # DLQ handler
    DLQ_RECORD_FAILED = "dlq_record_failed"
    DLQ_POISON_MESSAGE = "dlq_poison_message"
    DLQ_JOB_UNCHANGED = "dlq_job_unchanged"
    DLQ_JOB_FAILED_FINAL = "dlq_job_failed_final"
    DLQ_JOB_REDRIVEN = "dlq_job_redriven"  # a fresh message for a dead-lettered job with attempts left
    DLQ_JOB_REDRIVE_RACED = "dlq_job_redrive_raced"  # another dead letter of the job redrove it first

    # Callbacks (terminal writers, the republisher sweep, the delivery handler)
    CALLBACK_ENQUEUE_FAILED = "callback_enqueue_failed"
    CALLBACK_REENQUEUED = "callback_reenqueued"  # the sweep sent a delivery its terminal writer did not
    CALLBACK_ATTEMPT = "callback_attempt"  # one POST: its answer and the callback's state after it
    CALLBACK_REFUSED = "callback_refused"  # the URL failed the address check at delivery
    CALLBACK_SKIPPED = "callback_skipped"  # a delivery message for an event that is over (superseded, done)
    CALLBACK_HOP = "callback_hop"  # a delayed retry waiting beyond SQS's 15 min delay: sent on again
    CALLBACK_RECORD_FAILED = "callback_record_failed"
    CALLBACK_POISON_MESSAGE = "callback_poison_message"
    # The callback queue's consumer outside Lambda (runtime/callbacks/consumer.py)
    CALLBACK_CONSUMER_STARTING = "callback_consumer_starting"
    CALLBACK_CONSUMER_STOPPED = "callback_consumer_stopped"
    CALLBACK_POLL_FAILED = "callback_poll_failed"  # a receive or delete failed; the loop goes on
    CALLBACK_LIVENESS_FAILED = "callback_liveness_failed"  # the liveness file cannot be written: the probe fails

    # Local all-in-one
    LOCAL_STOPPING = "local_stopping"
    LOCAL_STOPPED = "local_stopped"
    LOCAL_CHILD_FAILED = "local_child_failed"
    CHILD_STARTED = "child_started"
    CHILD_EXITED = "child_exited"
    CHILD_CRASH_LOOPING = "child_crash_looping"
    CHILD_STOPPED = "child_stopped"
    DLQ_POLLER_STARTING = "dlq_poller_starting"
    DLQ_POLL_FAILED = "dlq_poll_failed"
    DLQ_INVOKE_FAILED = "dlq_invoke_failed"
