"""The load generator: threads sharing one pooled httpx client, bounded in count and time, and its own CPU use."""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from runtime.api.routes_jobs import BATCH_PATH

REQUEST_TIMEOUT_S = 10.0
JOBS_PATH = "/api/v1/jobs"
BATCH_REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Submitted:
    index: int
    sent_wall_s: float  # time.time() when the request was sent: compared with the job's server timestamps
    latency_s: float
    status: int
    job_id: str | None
    error: str | None = None


@dataclass
class LoadResult:
    submitted: list[Submitted] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU during the run: the load generator's own cost

    @property
    def ok(self) -> list[Submitted]:
        return [item for item in self.submitted if item.status in (200, 201) and item.job_id]

    @property
    def cpu_share(self) -> float:
        """Cores the load generator used on average (1.0 = one core busy)."""
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_client(api_url: str, connections: int, headers: Mapping[str, str] | None = None) -> httpx.Client:
    """`headers` carries the Authorization of the API key the load runs as."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(base_url=api_url, limits=limits, timeout=REQUEST_TIMEOUT_S, headers=dict(headers or {}))


def _post(client: httpx.Client, index: int, body: dict[str, Any]) -> Submitted:
    sent_wall = time.time()
    started = time.perf_counter()
    try:
        response = client.post(JOBS_PATH, json=body)
    except httpx.HTTPError as exc:
        return Submitted(index, sent_wall, time.perf_counter() - started, 0, None, repr(exc))
    latency = time.perf_counter() - started
    job_id = None
    error = None
    if response.status_code in (200, 201):
        job_id = response.json().get("jobId")
    else:
        error = response.text[:200]
    return Submitted(index, sent_wall, latency, response.status_code, job_id, error)


def burst(
    api_url: str, bodies: list[dict[str, Any]], *, concurrency: int, headers: Mapping[str, str] | None = None
) -> LoadResult:
    """POSTs every body as fast as `concurrency` clients can."""
    result = LoadResult()
    cpu_before, started = _process_cpu_s(), time.perf_counter()
    with make_client(api_url, concurrency, headers) as client, ThreadPoolExecutor(concurrency, "burst") as pool:
        result.submitted = list(pool.map(lambda pair: _post(client, pair[0], pair[1]), enumerate(bodies)))
    result.wall_s = time.perf_counter() - started
    result.cpu_s = _process_cpu_s() - cpu_before
    return result


def steady(
    api_url: str,
    body_for: Callable[[int], dict[str, Any]],
    *,
    rate_per_s: float,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """POSTs at a fixed rate (open loop: a slow answer does not delay the next request) for `duration_s`."""
    total = max(1, int(rate_per_s * duration_s))
    result = LoadResult()
    futures = []
    cpu_before, started = _process_cpu_s(), time.perf_counter()
    with make_client(api_url, 32, headers) as client, ThreadPoolExecutor(32, "steady") as pool:
        for index in range(total):
            delay = started + index / rate_per_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the open-loop schedule
            futures.append(pool.submit(_post, client, index, body_for(index)))
        result.submitted = [future.result() for future in futures]
    result.wall_s = time.perf_counter() - started
    result.cpu_s = _process_cpu_s() - cpu_before
    return result


def closed_loop(
    api_url: str,
    body_for: Callable[[int], dict[str, Any]],
    *,
    clients: int,
    duration_s: float,
    max_requests: int,
    on_tick: Callable[[], None] | None = None,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """`clients` threads, each sending its next POST when the last one answered, for `duration_s` (and at most
    `max_requests` in all). `on_tick` runs about every 0.5 s on the calling thread (memory sampling)."""
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + duration_s
    collected: list[Submitted] = []

    def run(client: httpx.Client) -> None:
        while time.perf_counter() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            outcome = _post(client, index, body_for(index))
            with lock:
                collected.append(outcome)

    cpu_before, started = _process_cpu_s(), time.perf_counter()
    with make_client(api_url, clients, headers) as client:
        threads = [threading.Thread(target=run, args=(client,), name=f"client-{n}") for n in range(clients)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            if on_tick is not None:
                on_tick()
            for thread in threads:
                thread.join(timeout=0.5 / clients)
        result.wall_s = time.perf_counter() - started
    result.cpu_s = _process_cpu_s() - cpu_before
    result.submitted = sorted(collected, key=lambda item: item.index)
    return result


def batch_burst(
    api_url: str,
    bodies: list[dict[str, Any]],
    *,
    clients: int,
    per_request: int,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """POSTs the bodies `per_request` at a time to the batch endpoint from `clients` keep-alive clients; one
    Submitted per job (its batch's send time and latency, its own status and id)."""
    result = LoadResult()
    chunks = [(start, bodies[start : start + per_request]) for start in range(0, len(bodies), per_request)]

    def post(client: httpx.Client, start: int, chunk: list[dict[str, Any]]) -> list[Submitted]:
        sent_wall = time.time()
        began = time.perf_counter()
        try:
            response = client.post(BATCH_PATH, json={"jobs": chunk})
        except httpx.HTTPError as exc:
            latency = time.perf_counter() - began
            return [Submitted(start + n, sent_wall, latency, 0, None, repr(exc)) for n in range(len(chunk))]
        latency = time.perf_counter() - began
        if response.status_code != 200:
            error = response.text[:200]
            return [
                Submitted(start + n, sent_wall, latency, response.status_code, None, error) for n in range(len(chunk))
            ]
        return [
            Submitted(
                start + n,
                sent_wall,
                latency,
                answer["status"],
                (answer.get("job") or {}).get("jobId"),
                answer.get("error"),
            )
            for n, answer in enumerate(response.json()["results"])
        ]

    cpu_before, started = _process_cpu_s(), time.perf_counter()
    with make_client(api_url, clients, headers) as client, ThreadPoolExecutor(clients, "batch") as pool:
        client.timeout = httpx.Timeout(BATCH_REQUEST_TIMEOUT_S)
        answers = list(pool.map(lambda pair: post(client, pair[0], pair[1]), chunks))
    result.wall_s = time.perf_counter() - started
    result.cpu_s = _process_cpu_s() - cpu_before
    result.submitted = [item for answer in answers for item in answer]
    return result


def direct_submit(service: Any, requests: list[Any], *, concurrency: int = 8) -> LoadResult:
    """Submits through the domain's JobService with the benchmark's own clients (not counted: they are not in our
    processes). For a benchmark-only job type the API does not know; the worker sees the same items and messages."""
    result = LoadResult()

    def one(pair: tuple[int, Any]) -> Submitted:
        index, request = pair
        sent_wall = time.time()
        started = time.perf_counter()
        outcome = service.submit(request)
        return Submitted(index, sent_wall, time.perf_counter() - started, 201, outcome.job.job_id)

    cpu_before, started = _process_cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(concurrency, "direct") as pool:
        result.submitted = list(pool.map(one, enumerate(requests)))
    result.wall_s = time.perf_counter() - started
    result.cpu_s = _process_cpu_s() - cpu_before
    return result
