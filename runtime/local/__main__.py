"""`python -m runtime.local [--api-port 8080] [--aws-port 4566]`: the whole system on one machine.

moto in this process (or AWS_ENDPOINT_URL's emulator) -> the stateful stack deployed from its CDK
definition -> the API, the worker, the DLQ poller and the callback consumer as child processes. A child that exits
is restarted with backoff (the emulator and its data live on in this process); Ctrl-C or SIGTERM stops everything,
and so does a child that keeps crashing (named on stderr, exit code 1).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings

from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore
from runtime.admin.access import AccessAdmin
from runtime.api.console import CONSOLE_PATH
from runtime.auth.principal import ALL_SCOPES
from runtime.aws_clients import build_client
from runtime.domain.ports import UtcClock
from runtime.local import LOCAL_TENANT
from runtime.local.emulator import start_emulator
from runtime.local.provision import LOCAL_ENV, provision
from runtime.local.supervisor import (
    ChildFailed,
    RestartPolicy,
    Supervisor,
    child_environment,
    child_specs,
    install_stop_handlers,
    repo_root,
)
from runtime.observability import logs
from runtime.observability.names import LogEvent

REGION = "us-east-1"
ENV_NAME = LOCAL_ENV


def create_local_api_key(endpoint_url: str, access_table_name: str) -> str:
    """A fresh key of tenant `local` with every scope, so the walk-through needs no admin step."""
    store = DynamoDbAccessStore(build_client("dynamodb", region=REGION, endpoint_url=endpoint_url), access_table_name)
    return AccessAdmin(store, UtcClock()).create_key(LOCAL_TENANT, ALL_SCOPES).token


def create_local_webhook_secret(endpoint_url: str, access_table_name: str) -> str:
    """A fresh callback signing secret of tenant `local`, so callbacks are signed with no admin step."""
    store = DynamoDbAccessStore(build_client("dynamodb", region=REGION, endpoint_url=endpoint_url), access_table_name)
    return AccessAdmin(store, UtcClock()).rotate_webhook_secret(LOCAL_TENANT).secret


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runtime.local", description=__doc__.splitlines()[0])
    parser.add_argument("--api-port", type=int, default=8080, help="the API's port on 127.0.0.1 (default 8080)")
    parser.add_argument("--aws-port", type=int, default=4566, help="the emulator's port on 127.0.0.1 (default 4566)")
    parser.add_argument(
        "--children-aws-endpoint",
        metavar="URL",
        help="the AWS endpoint the API, worker and DLQ poller use instead of the emulator's, e.g. a fault-injecting "
        "proxy in front of it; provisioning still talks to the emulator directly",
    )
    parser.add_argument(
        "--crash-limit",
        type=int,
        default=RestartPolicy.max_crashes,
        metavar="N",
        help=f"a child that exits N times within {RestartPolicy.window_s:g} s is crash-looping and stops everything "
        f"(default {RestartPolicy.max_crashes}); raise it when something outside kills children on purpose",
    )
    args = parser.parse_args(argv)
    if args.crash_limit < 1:
        parser.error(f"--crash-limit must be at least 1, got {args.crash_limit}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure()
    # The emulator warns about every resource type it skips (queue and bucket policies): known and harmless.
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"moto\.")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    # Ctrl-C during start-up lands here as KeyboardInterrupt; once the children run it only sets a flag.
    try:
        emulator = start_emulator(args.aws_port)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    supervisor: Supervisor | None = None
    try:
        resources = provision(endpoint_url=emulator.endpoint_url, env_name=ENV_NAME, region=REGION)
        api_key = create_local_api_key(emulator.endpoint_url, resources.access_table_name)
        webhook_secret = create_local_webhook_secret(emulator.endpoint_url, resources.access_table_name)
        children_endpoint = (args.children_aws_endpoint or emulator.endpoint_url).rstrip("/")
        env = child_environment(os.environ, endpoint_url=children_endpoint, ssm_path=resources.ssm_path)
        supervisor = Supervisor(
            child_specs(api_port=args.api_port),
            env,
            cwd=repo_root(),
            restart=RestartPolicy(max_crashes=args.crash_limit),
        )
        install_stop_handlers(supervisor)
        supervisor.start()
        api_url = f"http://127.0.0.1:{args.api_port}"
        supervisor.wait_ready(f"{api_url}/readyz")
        if supervisor.stop_requested.is_set():
            return 0
        print(
            f"job-tickets local ready: api={api_url} aws={emulator.endpoint_url} table={resources.table_name} "
            f"queue={resources.queue_url} dead-letter-queue={resources.dead_letter_queue_url} "
            f"bucket={resources.documents_bucket} ssm={resources.ssm_path} api-key={api_key} "
            f"console={api_url}{CONSOLE_PATH}/ "
            f"callback-queue={resources.callback_queue_url} webhook-secret={webhook_secret}",
            flush=True,
        )
        supervisor.run_until_stopped()
        logs.log_event(LogEvent.LOCAL_STOPPING)
        return 0
    except ChildFailed as exc:
        logs.log_event(LogEvent.LOCAL_CHILD_FAILED, level="error", child=exc.name, exitCode=exc.returncode)
        print(f"job-tickets local: {exc}; stopping everything", file=sys.stderr, flush=True)
        return 1
    except (RuntimeError, TimeoutError) as exc:
        print(f"job-tickets local: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # No second Ctrl-C in the middle of the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if supervisor is not None:
            supervisor.stop()
        emulator.stop()
        logs.log_event(LogEvent.LOCAL_STOPPED)


if __name__ == "__main__":
    sys.exit(main())
