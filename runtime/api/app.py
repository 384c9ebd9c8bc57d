"""The API's composition root: settings -> boto3 clients -> adapters -> use cases -> FastAPI app."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

from runtime import aws_clients
from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.priority_queue import PriorityJobQueue, sqs_priority_queue
from runtime.adapters.s3_objects import S3ResultLinks
from runtime.adapters.sqs_batch_sender import BatchingSqsJobQueue
from runtime.adapters.sqs_callback_queue import SqsCallbackQueue
from runtime.adapters.sqs_depth import SqsQueueDepths
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.api import openapi, routes_health, routes_jobs, routes_stats
from runtime.api.admission import AdmissionMiddleware
from runtime.api.console import mount_console
from runtime.api.deps import Container
from runtime.api.errors import install_error_handlers
from runtime.api.middleware import RequestBodyMiddleware, SecurityHeadersMiddleware, TraceIdMiddleware
from runtime.api.routes_health import ReadinessProbe
from runtime.api.schemas import MAX_BATCH_JOBS
from runtime.auth.api_keys import ApiKeyReader, ApiKeyVerifier
from runtime.auth.authenticator import Authenticator
from runtime.auth.oidc import OidcConfig, OidcVerifier
from runtime.callbacks.addresses import CallbackUrlPolicy, Resolver, system_resolver
from runtime.callbacks.outbox import CallbackOutbox
from runtime.domain.listing import CursorSigner, JobLister
from runtime.domain.ports import CallbackQueue, Clock, JobQueue, JobStore, UtcClock
from runtime.domain.schedule import DelayWindow
from runtime.domain.stats import StatsReader
from runtime.domain.submit import JobService
from runtime.observability import configure as configure_observability
from runtime.observability import tracing
from runtime.settings import Settings, get_settings

API_DESCRIPTION = """Asynchronous job tickets: submit jobs (one or a batch), poll and list them, retry or cancel them;
read the queues' depth and your last hour's throughput (`GET /api/v1/stats`). A web console that does all of
this from a browser is served at `/console/` (static files; it signs in with an API key).

Every `/api/v1` route needs `Authorization: Bearer <token>`: an API key (`python -m runtime.admin keys create`) or,
where the environment configures an OIDC issuer, an RS256 access token. Missing, malformed, unknown, revoked or
expired: `401 unauthorized` with `WWW-Authenticate: Bearer`, before any job is looked up. Lacking the scope
(`jobs:read` for GET and list, `jobs:write` for submit, batch, retry and cancel, which implies read):
`403 forbidden`. A body that is not JSON, too large or too slow is refused (415, 413, 408) before the token is
checked. API keys are checked
against memory for up to {api_key_cache_ttl_s:g} s: **a revoked key stops working within {api_key_cache_ttl_s:g} s**.

Every `/api/` request answers within **{request_deadline_s:g} s** once its body is in (a batch submit within
{batch_request_deadline_s:g} s): when the job store or the queue is too slow, the answer is `503 deadline_exceeded`
with `Retry-After`, and the request may still take effect (a submit's job is published, by the request or by the
republisher; repeating a submit with the same `Idempotency-Key` answers with that job). A batch submit stops
starting writes in time to answer with each job's own outcome (jobs not started: `503 deadline_exceeded` in their
results, not created); its whole-request `503` is the last resort. Each API process handles
at most {max_in_flight_requests} requests at once; past that it answers `503 overloaded` with `Retry-After` at once.
`/healthz` and `/readyz` are never refused, and `/readyz` answers within 2 s.

Every answer carries `X-Trace-Id`. Every error body is `{{"error": "<code>", "detail": "<one sentence naming the
field>"}}` (extra fields allowed), never a stack trace. Times are RFC 3339 in UTC."""


def build_authenticator(settings: Settings, api_keys: ApiKeyReader | None = None) -> Authenticator:
    """API keys from the access table (cached, see Settings.api_key_cache_ttl_s) and, when configured, OIDC."""
    if api_keys is None:
        api_keys = DynamoDbAccessStore(aws_clients.api_client("dynamodb", settings), settings.access_table_name)
    verifier = ApiKeyVerifier(
        api_keys, ttl_s=settings.api_key_cache_ttl_s, negative_ttl_s=settings.api_key_negative_cache_ttl_s
    )
    oidc = None
    if settings.oidc_issuer and settings.oidc_audience and settings.oidc_jwks_url:
        oidc = OidcVerifier(
            OidcConfig(
                issuer=settings.oidc_issuer,
                audience=settings.oidc_audience,
                jwks_url=settings.oidc_jwks_url,
                tenant_claim=settings.oidc_tenant_claim,
                refresh_cooldown_s=settings.oidc_jwks_refresh_cooldown_s,
            )
        )
    return Authenticator(verifier, oidc)


def build_container(
    settings: Settings,
    *,
    store: JobStore | None = None,
    queue: JobQueue | None = None,
    clock: Clock | None = None,
    api_keys: ApiKeyReader | None = None,
    callback_queue: CallbackQueue | None = None,
    resolver: Resolver | None = None,
) -> Container:
    """Wires the real adapters (one boto3 client per service per process); tests may pass their own. The queue
    built here is one SQS queue per priority, each sending through a BatchingSqsJobQueue unless
    settings.send_linger_s is 0; a single SqsJobQueue passed in is wrapped the same way."""
    if store is None:
        store = DynamoDbJobStore(aws_clients.api_client("dynamodb", settings), settings.table_name)
    # The console's counts read the jobs table whatever store a test passed in (a fake has no indexes).
    counter = (
        store
        if isinstance(store, DynamoDbJobStore)
        else DynamoDbJobStore(aws_clients.client("dynamodb", settings), settings.table_name)
    )
    if queue is None:
        queue = sqs_priority_queue(
            aws_clients.api_client("sqs", settings),
            settings.priority_queue_urls,
            trace_header=tracing.current_trace_header if settings.tracing_enabled else None,
            send_linger_s=settings.send_linger_s,
        )
    elif isinstance(queue, SqsJobQueue) and settings.send_linger_s > 0:
        # Concurrent submits share SendMessageBatch requests (a tenth of the SQS requests when busy).
        queue = BatchingSqsJobQueue(queue, linger_s=settings.send_linger_s)
    clock = clock or UtcClock()
    if callback_queue is None and settings.callback_queue_url:
        callback_queue = SqsCallbackQueue(aws_clients.client("sqs", settings), settings.callback_queue_url)
    outbox = CallbackOutbox(store=store, queue=callback_queue, clock=clock) if callback_queue is not None else None
    policy = None
    if callback_queue is not None:
        policy = CallbackUrlPolicy(
            allow_loopback_http=settings.callback_allow_loopback, resolver=resolver or system_resolver
        )
    service = JobService(
        store,
        queue,
        clock,
        retention_s=settings.retention_days * 86_400,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        submit_in_flight_s=settings.submit_in_flight_s,
        retry_republish_after_s=settings.retry_republish_after_s,
        delay_window=DelayWindow(settings.schedule_delay_window_s),
        # A cancel of a PENDING or FAILED job ends it here: the API hands its callback to the queue.
        on_callback_due=(
            (lambda job, status, now: outbox.enqueue(job, status=status, entered_at=now))
            if outbox is not None
            else None
        ),
    )
    lister = JobLister(store, CursorSigner(settings.cursor_key()))
    batch_writes = ThreadPoolExecutor(max_workers=settings.batch_write_concurrency, thread_name_prefix="batch-write")
    return Container(
        settings=settings,
        store=store,
        queue=queue,
        service=service,
        lister=lister,
        readiness=ReadinessProbe(store, queue, timeout_s=settings.readiness_timeout_s),
        authenticator=build_authenticator(settings, api_keys),
        batch_writes=batch_writes,
        stats=StatsReader(
            SqsQueueDepths(aws_clients.api_client("sqs", settings), settings.priority_queue_urls), counter, clock
        ),
        result_links=S3ResultLinks(
            lambda: aws_clients.presigning_s3_client(settings), expires_s=settings.result_url_ttl_s
        ),
        callback_policy=policy,
    )


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> FastAPI:
    if container is None:
        settings = settings or get_settings()
        configure_observability(settings)
        container = build_container(settings)
    settings = container.settings
    app = FastAPI(
        title="Job tickets API",
        version="1.0.0",
        description=API_DESCRIPTION.format(
            api_key_cache_ttl_s=settings.api_key_cache_ttl_s,
            request_deadline_s=settings.request_deadline_s,
            batch_request_deadline_s=settings.batch_request_deadline_s,
            max_in_flight_requests=settings.max_in_flight_requests,
        ),
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.container = container
    if isinstance(container.queue, (BatchingSqsJobQueue, PriorityJobQueue)):
        # Sends what is still waiting and ends the flusher thread when the server stops.
        app.router.add_event_handler("shutdown", container.queue.close)
    app.router.add_event_handler("shutdown", container.batch_writes.shutdown)
    install_error_handlers(app)
    descriptions = {"submit_job": routes_jobs.SUBMIT_DESCRIPTION, "submit_jobs_batch": routes_jobs.BATCH_DESCRIPTION}
    for route in routes_jobs.router.routes:
        description = descriptions.get(getattr(route, "name", ""))
        if description is not None:
            # The documented limits are this deployment's settings.
            route.description = description.format(  # type: ignore[attr-defined]
                max_body_bytes=settings.max_body_bytes,
                max_batch_body_bytes=settings.max_batch_body_bytes,
                max_batch_jobs=MAX_BATCH_JOBS,
                body_timeout_s=settings.http_body_timeout_s,
                republish_bound_s=settings.republish_bound_s,
                submit_in_flight_s=settings.submit_in_flight_s,
                schedule_delay_window_s=settings.schedule_delay_window_s,
                callback_timeout_s=settings.callback_timeout_s,
                callback_retry_base_s=settings.callback_retry_base_s,
                callback_retry_max_s=settings.callback_retry_max_s,
                callback_retry_window_s=settings.callback_retry_window_s,
                batch_request_deadline_s=settings.batch_request_deadline_s,
                batch_write_cutoff_s=settings.batch_write_cutoff_s,
            )
        if getattr(route, "name", None) == "retry_job":
            route.description = routes_jobs.RETRY_DESCRIPTION.format(  # type: ignore[attr-defined]
                retry_republish_after_s=settings.retry_republish_after_s,
            )
        if getattr(route, "name", None) == "cancel_job":
            route.description = routes_jobs.CANCEL_DESCRIPTION.format(  # type: ignore[attr-defined]
                cancel_bound_s=settings.cancel_notice_bound_s,
            )
    app.include_router(routes_jobs.router)
    app.include_router(routes_stats.router)
    app.include_router(routes_health.router)
    mount_console(app)
    openapi.install(app)
    # The request's span wraps the whole middleware stack (the instrumentation puts it outermost), so the trace id
    # middleware can adopt the span's trace id; that middleware is outside all but the security headers, so that
    # every answer (errors included) carries X-Trace-Id.
    tracing.instrument_app(app)
    # Inside the body middleware: a request's deadline starts once its body is in (slow bodies are the 408's).
    app.add_middleware(
        AdmissionMiddleware,
        max_in_flight=settings.max_in_flight_requests,
        deadline_s=settings.request_deadline_s,
        deadline_s_by_path={routes_jobs.BATCH_PATH: settings.batch_request_deadline_s},
        exempt=routes_health.HEALTH_PATHS,
    )
    app.add_middleware(
        RequestBodyMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.http_body_timeout_s,
        max_body_bytes_by_path={routes_jobs.BATCH_PATH: settings.max_batch_body_bytes},
    )
    app.add_middleware(TraceIdMiddleware)
    # Outermost, so that every answer gets the headers, the trace id middleware's own 500 included.
    app.add_middleware(SecurityHeadersMiddleware)
    return app
