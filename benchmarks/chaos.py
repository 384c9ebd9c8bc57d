"""`python -m benchmarks.chaos [--short] [--jobs N] [--seed S]`: the chaos suite (issue 11).

The local all-in-one (`python -m runtime.local`) runs against a moto server in a process of its own, with its
children's AWS endpoint routed through a fault-injecting proxy (benchmarks/chaos_proxy.py): DynamoDB and SQS
answer 5xx errors, throttles and latency spikes at the plan's rates. A well-behaved client submits jobs of every
built-in type through the HTTP API (an Idempotency-Key per logical job; connection errors, 503, 429 and 409 in
flight retried with the same key, honouring Retry-After), cancels some, and meanwhile the worker is SIGKILLed
every few seconds and the API once or twice (the supervisor restarts both), and the emulator is frozen
(SIGSTOP/SIGCONT) for a few seconds. Then it checks, from outside, what a user must be able to rely on:

- every accepted job reaches the terminal status expected of it (SUCCEEDED / FAILED_FINAL / CANCELED);
- 0 lost (every accepted job is listed), 0 duplicated (one job per idempotency key in the tenant's list),
  0 stuck (non-terminal once the system had time to settle);
- executions beyond one per job (the jobs' `attempts`, each a claim by a worker) no more than the disruptions
  explain: each worker kill or emulator freeze can cost at most one extra run of each job in flight then;
- no answer of 500 (or any 5xx other than 503), and every refusal (503, 429) carries Retry-After.

It prints the figures and exits 1 when a property does not hold. tests/e2e/test_chaos.py runs the short plan.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from benchmarks.chaos_proxy import FaultProxy, FaultRates
from runtime.domain.job import JobStatus
from runtime.local import LOCAL_TENANT
from tests.conftest import free_port, moto_subprocess

REPO_ROOT = Path(__file__).resolve().parents[1]
TERMINAL = {JobStatus.SUCCEEDED.value, JobStatus.FAILED_FINAL.value, JobStatus.CANCELED.value}
READY_TIMEOUT_S = 240.0  # the first start synthesizes the CDK stack
REQUEST_TIMEOUT_S = 30.0
REQUEST_GIVE_UP_S = 180.0  # a logical request retried this long without an answer counts as failed
RETRY_AFTER_CAP_S = 5.0
LIST_PAGE = 100
# Shorter than the defaults so a job whose message never left is re-enqueued within the run.
REPUBLISH_AFTER_S = 10
REPUBLISH_INTERVAL_S = 2


@dataclass(frozen=True)
class ChaosPlan:
    jobs: int
    clients: int
    rates: FaultRates
    worker_kills: int
    worker_kill_every_s: float  # after the previous kill's restart
    api_kills_at_s: tuple[float, ...]  # seconds after the load starts
    freezes_at_s: tuple[float, ...]
    freeze_s: float
    settle_timeout_s: float
    seed: int = 0


FULL = ChaosPlan(
    jobs=1000,
    clients=8,
    rates=FaultRates(error=0.03, throttle=0.03, latency=0.03, latency_s=1.0),
    worker_kills=12,
    worker_kill_every_s=5.0,
    api_kills_at_s=(10.0, 40.0),
    freezes_at_s=(20.0, 55.0),
    freeze_s=4.0,
    settle_timeout_s=480.0,
)
SHORT = ChaosPlan(
    jobs=150,
    clients=4,
    rates=FaultRates(error=0.01, throttle=0.01, latency=0.01, latency_s=0.3),
    worker_kills=1,
    worker_kill_every_s=6.0,
    api_kills_at_s=(9.0,),
    freezes_at_s=(14.0,),
    freeze_s=2.0,
    settle_timeout_s=150.0,
)


# ---- the system under test -------------------------------------------------------------------------------------


class LocalAllInOne:
    """`python -m runtime.local` on the emulator, children through the proxy; follows its children's pids and
    counts the worker's handler runs per job from its log lines."""

    def __init__(self, emulator_url: str, proxy_url: str) -> None:
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.ready: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        self.starts: Counter[str] = Counter()
        self.handler_runs: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()  # the worker's job_message outcomes, and the DLQ's verdicts
        self.tail_lines: list[str] = []
        self.worker_concurrency = 0
        self._ready_event = threading.Event()
        self._lock = threading.Lock()
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": emulator_url,
            "JOBS_REPUBLISH_AFTER_S": str(REPUBLISH_AFTER_S),
            "JOBS_REPUBLISH_INTERVAL_S": str(REPUBLISH_INTERVAL_S),
        }
        env.pop("JOBS_SSM_PATH", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime.local",
                "--api-port",
                str(self.api_port),
                "--children-aws-endpoint",
                proxy_url,
                # The suite kills children on purpose: that is no crash loop.
                "--crash-limit",
                "1000",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.tail_lines = [*self.tail_lines[-59:], line]
            if line.startswith("job-tickets local ready:"):
                self.ready = dict(part.split("=", 1) for part in line.split(":", 1)[1].split())
                self._ready_event.set()
            elif line.startswith("{"):
                self._on_event(line)
        self._ready_event.set()

    def _on_event(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        event = record.get("event")
        with self._lock:
            if event == "child_started":
                self.pids[record["child"]] = record["pid"]
                self.starts[record["child"]] += 1
            elif event == "worker_started":
                self.worker_concurrency = int(record.get("concurrency") or 0)
            elif event == "job_message":
                self.outcomes[str(record.get("outcome"))] += 1
                if record.get("handlerMs") is not None and record.get("jobId"):
                    self.handler_runs[record["jobId"]] += 1
            elif event == "dlq_job_failed_final":
                self.outcomes["dead_lettered"] += 1
            elif event == "dlq_job_redriven":
                self.outcomes["redriven"] += 1

    def wait_ready(self) -> None:
        if not self._ready_event.wait(READY_TIMEOUT_S) or not self.ready:
            raise RuntimeError(f"runtime.local did not get ready:\n{self.tail()}")

    def tail(self) -> str:
        with self._lock:
            return "\n".join(self.tail_lines)

    def kill_child(self, name: str, restart_timeout_s: float = 60.0) -> None:
        """SIGKILLs the child and waits until the supervisor has started it again."""
        with self._lock:
            pid, starts = self.pids[name], self.starts[name]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + restart_timeout_s
        while True:
            with self._lock:
                if self.starts[name] > starts:
                    return
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{name} was not restarted after SIGKILL:\n{self.tail()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


# ---- the well-behaved client -----------------------------------------------------------------------------------


@dataclass
class Answers:
    """Every HTTP answer the client got, by status, and how the refusals looked."""

    statuses: Counter[int] = field(default_factory=Counter)
    refusals_without_retry_after: int = 0
    connection_errors: int = 0
    gave_up: int = 0
    samples: dict[int, str] = field(default_factory=dict)  # one body per unexpected status
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code in (429, 503) and "Retry-After" not in response.headers:
                self.refusals_without_retry_after += 1
            if response.status_code >= 500 and response.status_code != 503:
                self.samples.setdefault(response.status_code, response.text[:300])

    @property
    def server_errors(self) -> int:
        """Answers of 500 and any other 5xx but 503 (a refusal)."""
        return sum(count for status, count in self.statuses.items() if status >= 500 and status != 503)


class GaveUp(Exception):
    pass


def call(client: httpx.Client, answers: Answers, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One logical request, retried as a careful client does: connection errors and timeouts, 503, 429 and
    409 idempotency_key_in_flight again with the same headers (so the same Idempotency-Key), after Retry-After."""
    give_up_at = time.monotonic() + REQUEST_GIVE_UP_S
    pause = 0.2
    while True:
        if time.monotonic() > give_up_at:
            with answers.lock:
                answers.gave_up += 1
            raise GaveUp(f"{method} {url}")
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TransportError:
            with answers.lock:
                answers.connection_errors += 1
            time.sleep(pause)  # the API is restarting: try again shortly
            pause = min(2.0, pause * 2)
            continue
        answers.record(response)
        in_flight = response.status_code == 409 and "idempotency_key_in_flight" in response.text
        if response.status_code in (429, 503) or in_flight or response.status_code >= 500:
            retry_after = response.headers.get("Retry-After", "")
            time.sleep(min(RETRY_AFTER_CAP_S, float(retry_after)) if retry_after.isdigit() else pause)
            continue
        return response


@dataclass(frozen=True)
class JobSpec:
    key: str
    body: dict[str, Any]
    expected: str
    cancel: bool = False


def job_specs(count: int, run: str, bucket: str) -> list[JobSpec]:
    """A mix of every built-in type and priority; some scheduled a little ahead, some canceled while they wait,
    some process_document with a missing source (a permanent failure)."""
    base = f"s3://{bucket}/tenants/{LOCAL_TENANT}/chaos/{run}"
    priorities = ("low", "normal", "high")
    specs = []
    for i in range(count):
        kind = i % 10
        expected = JobStatus.SUCCEEDED.value
        cancel = False
        if kind in (0, 1, 2, 3):
            source = f"{base}/in/{i}.txt" if kind != 3 else f"{base}/in/missing-{i}.txt"
            body: dict[str, Any] = {
                "type": "process_document",
                "params": {"source": source, "destination": f"{base}/out/{i}.json"},
            }
            if kind == 3:
                expected = JobStatus.FAILED_FINAL.value
        elif kind in (4, 5):
            body = {
                "type": "generate_report",
                "params": {
                    "title": f"chaos {i}",
                    "rows": [{"region": r, "amount": i + n} for n, r in enumerate(("eu", "us", "eu", "ap"))],
                    "group_by": "region",
                    "metric": "amount",
                    "format": "csv" if i % 2 else "json",
                    "destination": f"{base}/reports/{i}.{'csv' if i % 2 else 'json'}",
                },
            }
        else:
            body = {
                "type": "transform_data",
                "params": {
                    "records": [{"name": f" item {i} ", "n": str(i)}, {"name": "other", "n": "1"}],
                    "operations": [
                        {"op": "strip", "fields": ["name"]},
                        {"op": "uppercase", "fields": ["name"]},
                    ],
                },
            }
            if kind == 9:
                # Scheduled far enough ahead that the cancel finds it waiting: it must end CANCELED, never run.
                body["delaySeconds"] = 600
                expected, cancel = JobStatus.CANCELED.value, True
        if not cancel and i % 7 == 0:
            body["delaySeconds"] = 1 + i % 3
        body["priority"] = priorities[i % 3]
        key = f"chaos-{run}-{i}"
        body["metadata"] = {"chaosKey": key}
        specs.append(JobSpec(key, body, expected, cancel))
    return specs


@dataclass
class Submitted:
    job_ids: dict[str, str] = field(default_factory=dict)  # key -> jobId
    unexpected: list[str] = field(default_factory=list)  # answers a correct request should never get
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit_all(api_url: str, token: str, specs: list[JobSpec], clients: int, answers: Answers) -> Submitted:
    submitted = Submitted()
    queue = list(reversed(specs))
    queue_lock = threading.Lock()

    def one(client: httpx.Client, spec: JobSpec) -> None:
        response = call(client, answers, "POST", "/api/v1/jobs", json=spec.body, headers={"Idempotency-Key": spec.key})
        if response.status_code not in (200, 201):
            with submitted.lock:
                submitted.unexpected.append(f"submit {spec.key}: {response.status_code} {response.text[:200]}")
            return
        job_id = response.json()["jobId"]
        with submitted.lock:
            submitted.job_ids[spec.key] = job_id
        if spec.cancel:
            canceled = call(client, answers, "POST", f"/api/v1/jobs/{job_id}/cancel")
            if canceled.status_code != 200 or canceled.json().get("status") != JobStatus.CANCELED.value:
                with submitted.lock:
                    submitted.unexpected.append(f"cancel {job_id}: {canceled.status_code} {canceled.text[:200]}")

    def worker() -> None:
        with httpx.Client(
            base_url=api_url, timeout=REQUEST_TIMEOUT_S, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            while True:
                with queue_lock:
                    if not queue:
                        return
                    spec = queue.pop()
                try:
                    one(client, spec)
                except GaveUp as exc:
                    with submitted.lock:
                        submitted.unexpected.append(f"gave up: {exc}")

    threads = [threading.Thread(target=worker, name=f"chaos-client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return submitted


def list_jobs(client: httpx.Client, answers: Answers) -> list[dict[str, Any]]:
    """Every job of the tenant, page by page (newest first)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": LIST_PAGE, **({"cursor": cursor} if cursor else {})}
        response = call(client, answers, "GET", "/api/v1/jobs", params=params)
        if response.status_code != 200:
            raise RuntimeError(f"list answered {response.status_code}: {response.text[:200]}")
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("nextCursor")
        if not cursor:
            return items


# ---- the disruptions -------------------------------------------------------------------------------------------


@dataclass
class Disruptions:
    worker_kills: int = 0
    api_kills: int = 0
    freezes: int = 0
    errors: list[str] = field(default_factory=list)


def disrupt(system: LocalAllInOne, emulator: subprocess.Popen[bytes], plan: ChaosPlan, done: Disruptions) -> None:
    """Runs the plan's kills and freezes on one timeline from now; returns when all happened."""
    start = time.monotonic()
    events: list[tuple[float, str]] = [(at, "api") for at in plan.api_kills_at_s]
    events += [(at, "freeze") for at in plan.freezes_at_s]
    next_worker_kill = start + plan.worker_kill_every_s
    pending = sorted(events)
    try:
        while pending or done.worker_kills < plan.worker_kills:
            now = time.monotonic()
            if pending and now - start >= pending[0][0]:
                _, what = pending.pop(0)
                if what == "api":
                    system.kill_child("api")
                    done.api_kills += 1
                else:
                    os.kill(emulator.pid, signal.SIGSTOP)
                    try:
                        time.sleep(plan.freeze_s)  # the emulator stays frozen this long
                    finally:
                        os.kill(emulator.pid, signal.SIGCONT)
                    done.freezes += 1
                continue
            if done.worker_kills < plan.worker_kills and now >= next_worker_kill:
                system.kill_child("worker")
                done.worker_kills += 1
                next_worker_kill = time.monotonic() + plan.worker_kill_every_s
                continue
            time.sleep(0.05)
    except Exception as exc:  # noqa: BLE001 - reported with the figures, the run still checks what it can
        done.errors.append(f"{type(exc).__name__}: {exc}")


# ---- the run ---------------------------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    plan: ChaosPlan
    accepted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    unexpected_outcome: list[str] = field(default_factory=list)
    unexpected_answers: list[str] = field(default_factory=list)
    executions: int = 0
    extra_executions: int = 0
    extra_executions_bound: int = 0
    handler_runs_logged: int = 0
    worker_outcomes: Counter[str] = field(default_factory=Counter)
    worker_concurrency: int = 0
    answers: Answers = field(default_factory=Answers)
    disruptions: Disruptions = field(default_factory=Disruptions)
    faults: Counter[str] = field(default_factory=Counter)
    submit_s: float = 0.0
    settle_s: float = 0.0
    wall_s: float = 0.0

    @property
    def failures(self) -> list[str]:
        found = []
        if self.accepted != self.plan.jobs:
            found.append(f"accepted {self.accepted} of {self.plan.jobs} jobs")
        for name in ("lost", "duplicated", "stuck", "unexpected_outcome", "unexpected_answers"):
            values = getattr(self, name)
            if values:
                found.append(f"{name.replace('_', ' ')}: {len(values)} (e.g. {values[:3]})")
        if self.answers.server_errors:
            found.append(f"{self.answers.server_errors} answers of 5xx other than 503: {self.answers.samples}")
        if self.answers.refusals_without_retry_after:
            found.append(f"{self.answers.refusals_without_retry_after} refusals without Retry-After")
        if self.extra_executions > self.extra_executions_bound:
            found.append(f"{self.extra_executions} extra executions, more than {self.extra_executions_bound}")
        if self.disruptions.errors:
            found.append(f"disruptions failed: {self.disruptions.errors}")
        return found

    def lines(self) -> list[str]:
        answers = " ".join(f"{status}={count}" for status, count in sorted(self.answers.statuses.items()))
        faults = " ".join(f"{name}={count}" for name, count in sorted(self.faults.items()))
        d = self.disruptions
        verdict = "PASS" if not self.failures else "FAIL: " + "; ".join(self.failures)
        return [
            f"chaos: jobs={self.plan.jobs} accepted={self.accepted} "
            + " ".join(f"{status.lower()}={count}" for status, count in sorted(self.statuses.items())),
            f"chaos: lost={len(self.lost)} duplicated={len(self.duplicated)} stuck={len(self.stuck)} "
            f"unexpected_outcome={len(self.unexpected_outcome)} unexpected_answers={len(self.unexpected_answers)}",
            f"chaos: executions={self.executions} extra={self.extra_executions} "
            f"bound={self.extra_executions_bound} (({d.worker_kills} worker kills + {d.freezes} freezes) x "
            f"concurrency {self.worker_concurrency}) handler_runs_logged={self.handler_runs_logged}",
            f"chaos: answers {answers}; 5xx_not_503={self.answers.server_errors} "
            f"refusals_without_retry_after={self.answers.refusals_without_retry_after} "
            f"connection_errors={self.answers.connection_errors} gave_up={self.answers.gave_up}",
            "chaos: worker outcomes "
            + " ".join(f"{name}={count}" for name, count in sorted(self.worker_outcomes.items())),
            f"chaos: injected {faults}",
            f"chaos: disruptions worker_kills={d.worker_kills} api_kills={d.api_kills} "
            f"emulator_freezes={d.freezes}x{self.plan.freeze_s:g}s",
            f"chaos: submit_s={self.submit_s:.1f} settle_s={self.settle_s:.1f} wall_s={self.wall_s:.1f}",
            f"chaos: {verdict}",
        ]


def run(plan: ChaosPlan) -> ChaosReport:
    report = ChaosReport(plan=plan)
    began = time.monotonic()
    rates = {"dynamodb": plan.rates, "sqs": plan.rates}
    # moto in a process of its own (so it can be frozen), its DynamoDB item operations atomic as DynamoDB's are.
    with moto_subprocess(atomic=True) as moto:
        emulator_url, emulator = moto.url, moto.process
        proxy = FaultProxy(emulator_url, rates, seed=plan.seed).start()
        system = LocalAllInOne(emulator_url, proxy.url)
        try:
            system.wait_ready()
            _run_load(plan, report, system, emulator, proxy, emulator_url)
        finally:
            system.stop()
            proxy.stop()
    report.wall_s = time.monotonic() - began
    return report


def _run_load(
    plan: ChaosPlan,
    report: ChaosReport,
    system: LocalAllInOne,
    emulator: subprocess.Popen[bytes],
    proxy: FaultProxy,
    emulator_url: str,
) -> None:
    run_id = uuid.uuid4().hex[:8]
    bucket = system.ready["bucket"]
    specs = job_specs(plan.jobs, run_id, bucket)
    s3 = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url=emulator_url)
    for spec in specs:
        source = spec.body["params"].get("source", "")
        if spec.body["type"] == "process_document" and "/missing-" not in source:
            key = source.split("/", 3)[3]
            s3.put_object(Bucket=bucket, Key=key, Body=f"chaos document {spec.key}\nsecond line\n".encode())

    proxy.enabled.set()
    started = time.monotonic()
    chaos = threading.Thread(
        target=disrupt, args=(system, emulator, plan, report.disruptions), name="chaos-disruptions"
    )
    chaos.start()
    submitted = submit_all(system.api_url, system.ready["api-key"], specs, plan.clients, report.answers)
    report.submit_s = time.monotonic() - started
    report.accepted = len(submitted.job_ids)
    report.unexpected_answers = submitted.unexpected
    chaos.join()

    expected = {submitted.job_ids[spec.key]: spec for spec in specs if spec.key in submitted.job_ids}
    settle_from = time.monotonic()
    with httpx.Client(
        base_url=system.api_url,
        timeout=REQUEST_TIMEOUT_S,
        headers={"Authorization": f"Bearer {system.ready['api-key']}"},
    ) as client:
        while True:
            jobs = list_jobs(client, report.answers)
            by_id = {job["jobId"]: job for job in jobs}
            waiting = [job_id for job_id in expected if by_id.get(job_id, {}).get("status") not in TERMINAL]
            if not waiting or time.monotonic() - settle_from > plan.settle_timeout_s:
                break
            time.sleep(2.0)  # a poll interval while the worker drains what is left
    report.settle_s = time.monotonic() - settle_from
    proxy.enabled.clear()
    report.faults = Counter(proxy.counts)

    keys = Counter(job.get("metadata", {}).get("chaosKey") for job in jobs)
    report.duplicated = sorted(str(key) for key, count in keys.items() if count > 1)
    report.statuses = Counter(job["status"] for job in jobs)
    for job_id, spec in expected.items():
        job = by_id.get(job_id)
        if job is None:
            report.lost.append(job_id)
        elif job["status"] not in TERMINAL:
            report.stuck.append(f"{job_id} {job['status']}")
        elif job["status"] != spec.expected:
            error = (job.get("error") or {}).get("code")
            report.unexpected_outcome.append(
                f"{job_id} {spec.body['type']} {job['status']} != {spec.expected} "
                f"(attempts {job.get('attempts')}, error {error})"
            )
    attempts = [int(job.get("attempts") or 0) for job in jobs]
    report.executions = sum(attempts)
    report.extra_executions = sum(max(0, n - 1) for n in attempts)
    report.worker_concurrency = system.worker_concurrency
    d = report.disruptions
    report.extra_executions_bound = (d.worker_kills + d.freezes) * system.worker_concurrency
    report.handler_runs_logged = sum(system.handler_runs.values())
    report.worker_outcomes = Counter(system.outcomes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the bounded plan `make test` runs (150 jobs)")
    parser.add_argument("--jobs", type=int, help="jobs to submit (default 1000, 150 with --short)")
    parser.add_argument("--seed", type=int, default=0, help="the fault proxy's random seed")
    args = parser.parse_args(argv)
    plan = SHORT if args.short else FULL
    if args.jobs is not None:
        if args.jobs < 1:
            parser.error(f"--jobs must be at least 1, got {args.jobs}")
        plan = ChaosPlan(**{**plan.__dict__, "jobs": args.jobs})
    plan = ChaosPlan(**{**plan.__dict__, "seed": args.seed})
    report = run(plan)
    for line in report.lines():
        print(line, flush=True)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
