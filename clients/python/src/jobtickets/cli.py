"""The `jobtickets` command line: submit, get, list, cancel, retry and watch jobs.

Exit codes: 0 done (with --wait and watch: the job SUCCEEDED); 1 the job ended FAILED_FINAL or CANCELED;
2 bad usage or input; 3 the service refused the request (4xx); 4 the service could not be reached or failed
(5xx, after the client's retries); 5 --wait/watch timed out; 130 interrupted."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from jobtickets import __version__
from jobtickets.client import JobTicketsClient
from jobtickets.errors import ConnectionFailed, JobTicketsError, ServerError, WaitTimeout
from jobtickets.models import SUCCEEDED, Job

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130

URL_ENV = "JOBTICKETS_URL"
API_KEY_ENV = "JOBTICKETS_API_KEY"
BAR_WIDTH = 30


class UsageError(Exception):
    """Bad input on the command line (exit 2)."""


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top parser they carry the defaults; on each command they are SUPPRESSed so that an option given
    # before the command is not reset by the command's own parser.
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument("--url", default=default, help=f"service base URL (default: ${URL_ENV})")
    parser.add_argument("--api-key", default=default, help=f"API key or access token (default: ${API_KEY_ENV})")
    parser.add_argument(
        "--json", action="store_true", default=False if top else argparse.SUPPRESS, help="machine-readable output"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=30.0 if top else argparse.SUPPRESS,
        metavar="S",
        help="seconds one request may take, retries included (default 30)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtickets",
        description="Submit and follow jobs of the job tickets service.",
        epilog="exit codes: 0 ok (the job SUCCEEDED for --wait/watch), 1 the job ended FAILED_FINAL or CANCELED, "
        "2 bad usage, 3 refused by the service (4xx), 4 service unreachable or failing, 5 timed out, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _common_options(sub, top=False)
        return sub

    submit = command("submit", "submit a job (and optionally wait for it)")
    submit.add_argument("--type", required=True, help="the job type, e.g. transform_data")
    submit.add_argument("--params", required=True, help="params as JSON, or @file.json, or @- for stdin")
    submit.add_argument("--priority", choices=["low", "normal", "high"])
    submit.add_argument("--metadata", help="metadata as JSON, or @file.json")
    when = submit.add_mutually_exclusive_group()
    when.add_argument("--delay-seconds", type=int, metavar="N", help="start no sooner than N seconds from now")
    when.add_argument("--run-at", metavar="TIME", help="start no sooner than this RFC 3339 time")
    submit.add_argument("--callback-url", help="URL the service POSTs to when the job ends")
    submit.add_argument("--idempotency-key", help="default: a fresh key, so retries of this command's request are safe")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends, showing its progress")
    submit.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S seconds")

    for name, help in (("get", "show a job"), ("cancel", "cancel a job"), ("retry", "retry a job by hand")):
        command(name, help).add_argument("job_id", metavar="ID")

    watch = command("watch", "follow a job until it ends, showing its progress")
    watch.add_argument("job_id", metavar="ID")
    watch.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds")

    listing = command("list", "list your jobs, newest first")
    listing.add_argument("--status", help="only jobs in this status, e.g. SUCCEEDED")
    listing.add_argument("--type", help="only jobs of this type")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="show at most N jobs (default 20)")
    return parser


def read_json_argument(name: str, value: str, stdin: TextIO) -> dict[str, Any]:
    """A JSON object given inline, as @path, or as @- (stdin)."""
    if value.startswith("@"):
        source = value[1:]
        try:
            text = stdin.read() if source == "-" else open(source, encoding="utf-8").read()  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"{name}: cannot read {source!r}: {exc.strerror or exc}") from None
    else:
        text = value
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name}: not valid json: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{name}: must be a json object, got {type(document).__name__}")
    return document


def _percent(job: Job) -> str:
    if job.status == SUCCEEDED:
        return "100%"
    return f"{round(job.progress.fraction * 100):3d}%" if job.progress is not None else "  --"


class Display:
    """Follows a job on `stream`: on a terminal one live line (status, a bar, the percentage and the handler's
    message) redrawn in place; otherwise one plain line per change, fit for logs."""

    def __init__(self, stream: TextIO, *, live: bool) -> None:
        self.stream = stream
        self.live = live
        self.drawn = False

    def update(self, job: Job) -> None:
        message = (job.progress.message if job.progress is not None else None) or ""
        if self.live:
            # A job that SUCCEEDED is complete whether or not its handler reported progress.
            fraction = 1.0 if job.status == SUCCEEDED else job.progress.fraction if job.progress is not None else 0.0
            filled = round(fraction * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            line = f"{job.status:<12} [{bar}] {_percent(job)}  {message}"
            self.stream.write("\r\x1b[K" + line[: _columns(self.stream) - 1])
            self.drawn = True
        else:
            percent = "" if _percent(job).strip() == "--" else _percent(job).strip()
            self.stream.write(" ".join(part for part in (job.status, percent, message) if part) + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.live and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 120


def _print_job(job: Job, out: TextIO) -> None:
    rows: list[tuple[str, Any]] = [
        ("jobId", job.job_id),
        ("status", job.status + (" (cancel requested)" if job.cancel_requested else "")),
        ("type", job.job_type),
        ("priority", job.priority),
        ("attempts", job.attempts),
        ("createdAt", job.raw.get("createdAt")),
        ("updatedAt", job.raw.get("updatedAt")),
    ]
    if job.run_at is not None:
        rows.append(("runAt", job.raw.get("runAt")))
    if job.progress is not None:
        rows.append(("progress", f"{_percent(job).strip()} {job.progress.message or ''}".rstrip()))
    if job.callback is not None:
        rows.append(("callback", f"{job.callback.state} ({job.callback.attempts} attempts) {job.callback.url}"))
    if job.error is not None:
        rows.append(("error", f"{job.error.code}: {job.error.message}"))
    if job.result is not None:
        rows.append(("result", json.dumps(job.result, ensure_ascii=False)))
    if job.result_ref is not None:
        rows.append(("result", f"stored apart, {job.result_ref.size} bytes at {job.result_ref.uri}"))
    for name, value in rows:
        out.write(f"{name:<10} {value}\n")


def _print_json(document: Any, out: TextIO) -> None:
    out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def _follow(client: JobTicketsClient, job_id: str, timeout: float | None, err: TextIO) -> Job:
    display = Display(err, live=err.isatty())
    try:
        return client.wait(job_id, timeout, on_progress=display.update, on_status=display.update)
    finally:
        display.finish()


def _outcome(job: Job, started: float, out: TextIO, as_json: bool) -> int:
    if as_json:
        _print_json(job.raw, out)
    else:
        line = f"job {job.job_id} {job.status} after {time.monotonic() - started:.1f} s (attempts {job.attempts})"
        if job.error is not None and job.status != SUCCEEDED:
            line += f": {job.error.code}: {job.error.message}"
        out.write(line + "\n")
    return EXIT_OK if job.status == SUCCEEDED else EXIT_JOB_FAILED


def run(args: argparse.Namespace, client: JobTicketsClient, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    as_json: bool = args.json
    started = time.monotonic()
    if args.command == "submit":
        if args.timeout is not None and not args.wait:
            raise UsageError("--timeout: only with --wait")
        params = read_json_argument("--params", args.params, stdin)
        metadata = read_json_argument("--metadata", args.metadata, stdin) if args.metadata else None
        job = client.submit(
            args.type,
            params,
            priority=args.priority,
            metadata=metadata,
            idempotency_key=args.idempotency_key,
            run_at=args.run_at,
            delay_seconds=args.delay_seconds,
            callback_url=args.callback_url,
        )
        if not args.wait:
            if as_json:
                _print_json(job.raw, out)
            else:
                out.write(f"submitted {job.job_id} {job.job_type} {job.status}\n")
            return EXIT_OK
        if not as_json:
            out.write(f"submitted {job.job_id} {job.job_type} {job.status}\n")
            out.flush()
        return _outcome(_follow(client, job.job_id, args.timeout, err), started, out, as_json)
    if args.command == "watch":
        return _outcome(_follow(client, args.job_id, args.timeout, err), started, out, as_json)
    if args.command == "list":
        if args.limit < 1:
            raise UsageError(f"--limit: must be at least 1, got {args.limit}")
        jobs = []
        for job in client.list(args.status, args.type, page_size=min(args.limit, 100)):
            jobs.append(job)
            if len(jobs) >= args.limit:
                break
        if as_json:
            _print_json([job.raw for job in jobs], out)
        else:
            out.write(f"{'JOB ID':<36}  {'STATUS':<12}  {'TYPE':<18}  {'PRIORITY':<8}  CREATED\n")
            for job in jobs:
                created = job.raw.get("createdAt", "")
                out.write(f"{job.job_id:<36}  {job.status:<12}  {job.job_type:<18}  {job.priority:<8}  {created}\n")
        return EXIT_OK
    action = {"get": client.get, "cancel": client.cancel, "retry": client.retry}[args.command]
    job = action(args.job_id)
    if as_json:
        _print_json(job.raw, out)
    else:
        _print_job(job, out)
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    environ = dict(os.environ) if environ is None else environ
    args = build_parser().parse_args(argv)
    url = args.url or environ.get(URL_ENV)
    api_key = args.api_key or environ.get(API_KEY_ENV)
    try:
        if not url:
            raise UsageError(f"no service URL: pass --url or set {URL_ENV}")
        if not api_key:
            raise UsageError(f"no API key: pass --api-key or set {API_KEY_ENV}")
        if args.deadline <= 0:
            raise UsageError(f"--deadline: must be positive, got {args.deadline:g}")
        with JobTicketsClient(url, api_key, deadline_s=args.deadline) as client:
            return run(args, client, out, err, stdin or sys.stdin)
    except (UsageError, ValueError) as exc:
        err.write(f"jobtickets: error: {exc}\n")
        return EXIT_USAGE
    except WaitTimeout as exc:
        err.write(f"jobtickets: {exc.detail}\n")
        return EXIT_TIMEOUT
    except JobTicketsError as exc:
        quoted = f" (trace id {exc.trace_id})" if isinstance(exc, ServerError) and exc.trace_id else ""
        err.write(f"jobtickets: {exc}{quoted}\n")
        return EXIT_UNAVAILABLE if isinstance(exc, ConnectionFailed | ServerError) else EXIT_REFUSED
    except KeyboardInterrupt:
        err.write("\njobtickets: interrupted\n")
        return EXIT_INTERRUPTED
