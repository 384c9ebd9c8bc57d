"""Starts and watches the local all-in-one for the benchmark: its processes, their stdout bytes, RSS and CPU
from /proc, and the AWS call counts they write (JOBS_AWS_CALLS_FILE with `{pid}`: one file per process)."""

from __future__ import annotations

import contextlib
import json
import operator
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
READY_TIMEOUT_S = 90.0
# How often a scenario checks whether its jobs (or Celery's tasks) are done: the same for both, since each check is
# work for the one moto process that also serves the run.
POLL_S = 0.5
READY_PREFIX = b"job-tickets local ready:"
# A running stack given by URL (--api-url) needs a key: `python -m runtime.admin keys create --tenant ...`.
API_KEY_ENV = "JOBS_BENCH_API_KEY"
STOP_TIMEOUT_S = 15.0
_N = TypeVar("_N", int, float)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- /proc --------------------------------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def cmdline(pid: int) -> list[str]:
    raw = _read(f"/proc/{pid}/cmdline")
    return [part for part in (raw or "").split("\0") if part]


def parent_pid(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # The command name (field 2) may hold spaces or parentheses: split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process (all its threads)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int | None:
    statm = _read(f"/proc/{pid}/statm")
    if not statm:
        return None
    return int(statm.split()[1]) * PAGE_BYTES


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = parent_pid(int(entry))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def role_of(pid: int, supervisor: int) -> str:
    if pid == supervisor:
        return "local (moto + supervisor)"
    args = " ".join(cmdline(pid))
    for module, role in (
        ("runtime.api", "api"),
        ("runtime.worker", "worker"),
        ("dlq", "dlq poller"),
        ("runtime.callbacks.consumer", "callback consumer"),
    ):
        if module in args:
            return role
    return args[:60] or f"pid {pid}"


# --- stdout accounting ---------------------------------------------------------------------------------------------


@dataclass
class OutputCounter:
    """Bytes and lines the all-in-one's processes printed (log ingestion is billed by the byte)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    bytes_total: int = 0
    lines_total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)  # bytes by "emf" / event name / "text"
    lines_by_kind: Counter[str] = field(default_factory=Counter)
    tail: list[str] = field(default_factory=list)
    ready: dict[str, str] = field(default_factory=dict)  # the fields of the all-in-one's ready line

    def add(self, line: bytes) -> None:
        kind = classify_line(line)
        if line.startswith(READY_PREFIX):
            fields = line[len(READY_PREFIX) :].decode("utf-8", "replace").split()
            self.ready = dict(part.split("=", 1) for part in fields if "=" in part)
        with self.lock:
            self.bytes_total += len(line)
            self.lines_total += 1
            self.by_kind[kind] += len(line)
            self.lines_by_kind[kind] += 1
            self.tail.append(line.decode("utf-8", "replace").rstrip())
            if len(self.tail) > 200:
                del self.tail[:100]

    def snapshot(self) -> tuple[int, int, Counter[str], Counter[str]]:
        with self.lock:
            return self.bytes_total, self.lines_total, Counter(self.by_kind), Counter(self.lines_by_kind)


def classify_line(line: bytes) -> str:
    text = line.strip()
    if not text.startswith(b"{"):
        return "text"
    try:
        record = json.loads(text)
    except ValueError:
        return "text"
    if not isinstance(record, dict):
        return "text"
    if "_aws" in record:
        return "emf"
    return f"log:{record.get('event') or record.get('msg') or record.get('message') or '?'}"[:60]


def _pump(stream: IO[bytes], counter: OutputCounter) -> None:
    for line in iter(stream.readline, b""):
        counter.add(line)


# --- AWS call files ------------------------------------------------------------------------------------------------

Calls = dict[str, dict[str, int]]  # {category: {"service.Operation": count}}


def read_call_files(directory: Path) -> dict[int, Calls]:
    """{pid: snapshot} from the files `calls.<pid>.json` our processes write."""
    result: dict[int, Calls] = {}
    for path in directory.glob("calls.*.json"):
        try:
            pid = int(path.name.split(".")[1])
            result[pid] = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
    return result


def subtract(after: Mapping[str, Mapping[str, int]], before: Mapping[str, Mapping[str, int]]) -> Calls:
    delta: Calls = {}
    for category, operations in after.items():
        for operation, count in operations.items():
            diff = count - before.get(category, {}).get(operation, 0)
            if diff:
                delta.setdefault(category, {})[operation] = diff
    return delta


def merge(snapshots: Iterator[Mapping[str, Mapping[str, int]]] | list[Calls]) -> Calls:
    total: Calls = {}
    for snapshot in snapshots:
        for category, operations in snapshot.items():
            bucket = total.setdefault(category, {})
            for operation, count in operations.items():
                bucket[operation] = bucket.get(operation, 0) + count
    return total


# --- the all-in-one -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    table_name: str
    access_table_name: str
    queue_url: str
    dead_letter_queue_url: str
    documents_bucket: str
    high_priority_queue_url: str
    low_priority_queue_url: str


class LocalStack:
    """One `python -m runtime.local` (fresh moto state), or a running one given by URLs."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        api_url: str | None = None,
        aws_url: str | None = None,
        calls_dir: Path | None = None,
    ) -> None:
        self.external = api_url is not None
        self._extra_env = dict(env or {})
        self.api_port = free_port()
        self.aws_port = free_port()
        self.api_url = api_url or f"http://127.0.0.1:{self.api_port}"
        self.aws_url = aws_url or f"http://127.0.0.1:{self.aws_port}"
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if calls_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="jobs-bench-")
            calls_dir = Path(self._tmp.name)
        self.calls_dir = calls_dir
        self.output = OutputCounter()
        self.process: subprocess.Popen[bytes] | None = None
        self._pumps: list[threading.Thread] = []
        self.started_s = 0.0

    # lifecycle
    def start(self) -> None:
        if self.external:
            self.wait_ready()
            return
        env = dict(os.environ)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
                "JOBS_AWS_CALLS_FILE": str(self.calls_dir / "calls.{pid}.json"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("AWS_ENDPOINT_URL", None)  # the all-in-one starts its own moto
        env.update(self._extra_env)
        started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime.local", "--api-port", str(self.api_port), "--aws-port", str(self.aws_port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for stream in (self.process.stdout, self.process.stderr):
            assert stream is not None
            pump = threading.Thread(target=_pump, args=(stream, self.output), daemon=True)
            pump.start()
            self._pumps.append(pump)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - started

    @property
    def api_key(self) -> str:
        """The all-in-one's key (tenant `local`, from its ready line), or JOBS_BENCH_API_KEY for a given stack."""
        key = os.environ.get(API_KEY_ENV) if self.external else self.output.ready.get("api-key")
        if not key:
            raise RuntimeError(f"no api key: set {API_KEY_ENV}" if self.external else "no api-key on the ready line")
        return key

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"runtime.local exited with {self.process.returncode}:\n" + self.tail())
                try:
                    response = client.get(f"{self.api_url}/readyz")
                    # The all-in-one prints its ready line (with the api key) just after /readyz answers.
                    if response.status_code == 200 and (self.external or self.output.ready):
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.25)
        raise RuntimeError(f"all-in-one not ready after {READY_TIMEOUT_S:.0f} s: {last}\n" + self.tail())

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        known = descendants(process.pid)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        # Children the supervisor failed to stop: end them by their ids (only ones we started through it).
        for pid in known:
            if parent_pid(pid) is not None and any("runtime" in part for part in cmdline(pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pump in self._pumps:
            pump.join(timeout=2)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def tail(self, lines: int = 30) -> str:
        with self.output.lock:
            return "\n".join(self.output.tail[-lines:])

    # processes
    def processes(self) -> dict[int, str]:
        """{pid: role} of the all-in-one and its children."""
        if self.process is None:
            return {}
        root = self.process.pid
        return {pid: role_of(pid, root) for pid in [root, *descendants(root)]}

    def pid_of(self, role: str) -> int | None:
        for pid, name in self.processes().items():
            if name == role:
                return pid
        return None

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds of each role, summed over its processes."""
        return self._by_role(cpu_seconds, operator.add)

    def rss_by_role(self) -> dict[str, int]:
        """The largest RSS among each role's processes."""
        return self._by_role(rss_bytes, max)

    def _by_role(self, measure: Callable[[int], _N | None], combine: Callable[[_N, _N], _N]) -> dict[str, _N]:
        """`measure` of every live process (None: it has gone), combined per role."""
        result: dict[str, _N] = {}
        for pid, role in self.processes().items():
            value = measure(pid)
            if value is not None:
                result[role] = combine(result[role], value) if role in result else value
        return result

    # AWS calls
    def calls_by_role(self) -> dict[str, Calls]:
        roles = self.processes()
        grouped: dict[str, list[Calls]] = {}
        for pid, snapshot in read_call_files(self.calls_dir).items():
            grouped.setdefault(roles.get(pid, f"pid {pid} (gone)"), []).append(snapshot)
        return {role: merge(snapshots) for role, snapshots in grouped.items()}

    def resources(self, ssm: Any) -> Resources:
        """Names of the deployed resources, from the SSM parameters the stateful stack wrote."""
        prefix = "/job-tickets/local/"
        values: dict[str, str] = {}
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix):
            for parameter in page["Parameters"]:
                values[parameter["Name"][len(prefix) :]] = parameter["Value"]
        try:
            return Resources(
                table_name=values["table-name"],
                access_table_name=values["access-table-name"],
                queue_url=values["queue-url"],
                dead_letter_queue_url=values["dead-letter-queue-url"],
                documents_bucket=values["documents-bucket"],
                high_priority_queue_url=values["high-priority-queue-url"],
                low_priority_queue_url=values["low-priority-queue-url"],
            )
        except KeyError as exc:
            raise RuntimeError(f"ssm parameter missing under {prefix}: {exc}; found {sorted(values)}") from None


@contextlib.contextmanager
def paused(pid: int | None) -> Iterator[None]:
    """SIGSTOP/SIGCONT one process we started (the worker), to build a backlog or to see an item before a claim."""
    if pid is None:
        raise RuntimeError("no worker process to pause")
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, all processes) since boot, from /proc/stat."""
    fields = (_read("/proc/stat") or "cpu 0").splitlines()[0].split()[1:]
    values = [int(value) for value in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS
