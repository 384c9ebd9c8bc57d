"""The API under 256 concurrent clients while its store freezes: latency and refusals (issue 11, defect 2).

`python -m benchmarks.bench_overload [--repo PATH] [--clients 256] [--seconds 25] [--freeze-after 5] [--freeze 10]`

Starts a moto server and the API (`python -m runtime.api`, from `--repo`, so that another checkout's API can be
measured with the same load), then keeps `--clients` concurrent submits going for `--seconds` while the emulator is
frozen (SIGSTOP) from `--freeze-after` for `--freeze` seconds; a client told `503` waits its Retry-After. Prints
one JSON object: answers by status, and the p50/p99/max latency of all requests and of those sent while the store
was frozen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.adapters.resources import create_resources
from tests.api.conftest import DOCS_PREFIX, DOCUMENTS_BUCKET, bearer, issue_key
from tests.conftest import free_port, moto_subprocess

REQUEST_TIMEOUT_S = 120.0


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


def latency_summary(samples: list[tuple[float, float, int]]) -> dict[str, Any]:
    latencies = [latency for _, latency, _ in samples]
    return {
        "requests": len(samples),
        "p50_s": percentile(latencies, 0.50),
        "p99_s": percentile(latencies, 0.99),
        "max_s": round(max(latencies, default=0.0), 3),
        "refused_503": sum(1 for _, _, status in samples if status == 503),
    }


async def load(
    api_url: str, headers: dict[str, str], clients: int, seconds: float, freeze_window: tuple[float, float]
) -> dict[str, Any]:
    samples: list[tuple[float, float, int]] = []  # (sent at, latency, status); status 0: no answer
    started = time.monotonic()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=api_url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT_S) as http:

        async def client(number: int) -> None:
            sent = 0
            while time.monotonic() - started < seconds:
                sent += 1
                body = {
                    "type": "process_document",
                    "params": {"source": f"{DOCS_PREFIX}in-{number}-{sent}.txt", "destination": f"{DOCS_PREFIX}o.json"},
                }
                at = time.monotonic()
                retry_after = 0.0
                try:
                    answer = await http.post("/api/v1/jobs", json=body)
                    status = answer.status_code
                    retry_after = float(answer.headers.get("Retry-After", 0)) if status == 503 else 0.0
                except httpx.HTTPError:
                    status = 0
                samples.append((at - started, time.monotonic() - at, status))
                await asyncio.sleep(retry_after)  # a well-behaved client waits as it was told before asking again

        await asyncio.gather(*(client(number) for number in range(clients)))
    statuses: dict[str, int] = {}
    for _, _, status in samples:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    start, end = freeze_window
    return {
        "statuses": statuses,
        "all": latency_summary(samples),
        "sent_while_frozen": latency_summary([sample for sample in samples if start <= sample[0] < end]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_overload")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--freeze-after", type=float, default=5.0)
    parser.add_argument("--freeze", type=float, default=10.0)
    args = parser.parse_args(argv)
    with moto_subprocess(atomic=True) as moto:
        resources = create_resources(moto.url, "overload")
        port = free_port()
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": moto.url,
            "JOBS_TABLE_NAME": resources.table_name,
            "JOBS_ACCESS_TABLE_NAME": resources.access_table_name,
            "JOBS_QUEUE_URL": resources.queue_url,
            "JOBS_DEAD_LETTER_QUEUE_URL": resources.dead_letter_queue_url,
            "JOBS_DOCUMENTS_BUCKET": DOCUMENTS_BUCKET,
            "JOBS_LOG_LEVEL": "ERROR",
        }
        api = subprocess.Popen(
            [sys.executable, "-m", "runtime.api", "--port", str(port)],
            cwd=args.repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        api_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{api_url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or api.poll() is not None:
                    raise RuntimeError("the api did not start")
                time.sleep(0.2)  # the API process is still starting
            headers = bearer(issue_key(resources))
            assert httpx.get(f"{api_url}/api/v1/jobs/warm-up", headers=headers, timeout=10).status_code == 404

            async def run() -> dict[str, Any]:
                window = (args.freeze_after, args.freeze_after + args.freeze)
                task = asyncio.ensure_future(load(api_url, headers, args.clients, args.seconds, window))
                await asyncio.sleep(args.freeze_after)
                os.kill(moto.process.pid, signal.SIGSTOP)
                try:
                    await asyncio.sleep(args.freeze)
                finally:
                    os.kill(moto.process.pid, signal.SIGCONT)
                return await task

            result = asyncio.run(run())
        finally:
            api.send_signal(signal.SIGINT)
            try:
                api.wait(timeout=15)
            except subprocess.TimeoutExpired:
                api.kill()
    print(json.dumps({"repo": str(args.repo), "clients": args.clients, "freeze_s": args.freeze, **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
