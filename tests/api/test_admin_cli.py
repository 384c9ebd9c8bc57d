"""`python -m runtime.admin` as an operator runs it (a subprocess) against moto's server: keys create/list/revoke,
webhook secret rotation, --json output, exit codes for bad input; and the keys it makes work on the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore
from runtime.auth.api_keys import hash_secret
from tests.adapters.resources import AwsResources, create_resources, raw_client
from tests.api.conftest import LiveApi, bearer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resources(moto_server: str) -> AwsResources:
    return create_resources(moto_server, "admin")


def admin(resources: AwsResources, *args: str, ssm_path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("JOBS_")}
    env.update(AWS_ENDPOINT_URL=resources.endpoint, AWS_REGION="us-east-1", PYTHONPATH=str(REPO))
    if ssm_path is None:
        env.update(
            JOBS_TABLE_NAME=resources.table_name,
            JOBS_ACCESS_TABLE_NAME=resources.access_table_name,
            JOBS_QUEUE_URL=resources.queue_url,
            JOBS_DEAD_LETTER_QUEUE_URL=resources.dead_letter_queue_url,
            JOBS_DOCUMENTS_BUCKET=resources.bucket,
        )
    else:
        env["JOBS_SSM_PATH"] = ssm_path
    return subprocess.run(
        [sys.executable, "-m", "runtime.admin", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_create_list_revoke_with_json_output(resources: AwsResources) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:6]}"
    created = admin(resources, "keys", "create", "--tenant", tenant, "--scopes", "jobs:read", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert set(key) == {"keyId", "apiKey", "tenant", "scopes"}
    assert (key["tenant"], key["scopes"]) == (tenant, ["jobs:read"])
    assert key["apiKey"].startswith(f"jt_{key['keyId']}_")

    # Stored as a hash only: the secret appears nowhere in the item.
    item = raw_client("dynamodb", resources.endpoint).get_item(
        TableName=resources.access_table_name, Key={"pk": {"S": f"key#{key['keyId']}"}}
    )["Item"]
    secret = key["apiKey"].split("_", 2)[2]
    assert secret not in json.dumps(item)
    assert item["secretHash"]["S"] == hash_secret(secret)

    default = json.loads(admin(resources, "keys", "create", "--tenant", tenant, "--json").stdout)
    assert default["scopes"] == ["jobs:read", "jobs:write"]

    listed = admin(resources, "keys", "list", "--tenant", tenant, "--json")
    assert listed.returncode == 0, listed.stderr
    keys = {entry["keyId"]: entry for entry in json.loads(listed.stdout)}
    assert set(keys) == {key["keyId"], default["keyId"]}
    assert all(entry["revokedAt"] is None and "apiKey" not in entry for entry in keys.values())

    revoked = admin(resources, "keys", "revoke", key["keyId"], "--json")
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revokedAt"] is not None
    after = {entry["keyId"]: entry for entry in json.loads(admin(resources, "keys", "list", "--json").stdout)}
    assert after[key["keyId"]]["revokedAt"] == json.loads(revoked.stdout)["revokedAt"]
    assert after[default["keyId"]]["revokedAt"] is None

    text = admin(resources, "keys", "list", "--tenant", tenant)
    assert key["keyId"] in text.stdout and key["apiKey"] not in text.stdout


def test_rotate_webhook_secret_returns_a_new_secret_the_worker_can_read(resources: AwsResources) -> None:
    first = admin(resources, "webhooks", "rotate-secret", "--tenant", "hooks", "--json")
    second = admin(resources, "webhooks", "rotate-secret", "--tenant", "hooks", "--json")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert set(one) == {"tenant", "secret"} and one["tenant"] == "hooks"
    assert one["secret"] != two["secret"] and len(two["secret"]) >= 40
    store = DynamoDbAccessStore(raw_client("dynamodb", resources.endpoint), resources.access_table_name)
    assert store.get_webhook_secret("hooks") == two["secret"]
    assert store.get_webhook_secret("nobody") is None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("keys", "create", "--tenant", "Bad Tenant"), 2, "bad tenant name 'Bad Tenant'"),
        (("keys", "create", "--tenant", "t", "--scopes", "jobs:read,jobs:admin"), 2, "unknown scope 'jobs:admin'"),
        (("keys", "create", "--tenant", "t", "--scopes", ""), 2, "no scope given"),
        (("keys", "list", "--tenant=-x"), 2, "bad tenant name '-x'"),
        (("keys", "revoke", "not-a-key-id"), 2, "bad key id 'not-a-key-id'"),
        (("keys", "revoke", "0123456789abcdef"), 3, "no key with id '0123456789abcdef'"),
        (("webhooks", "rotate-secret", "--tenant", "UPPER"), 2, "bad tenant name 'UPPER'"),
        (("keys", "create"), 2, "--tenant"),
        (("nonsense",), 2, "invalid choice"),
    ],
)
def test_bad_input_exits_non_zero_naming_the_problem(
    resources: AwsResources, args: tuple[str, ...], code: int, message: str
) -> None:
    result = admin(resources, *args)
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_from_the_ssm_path_as_on_aws(resources: AwsResources) -> None:
    path = f"/job-tickets/admin-{uuid.uuid4().hex[:8]}"
    ssm = raw_client("ssm", resources.endpoint)
    for name, value in {
        "table-name": resources.table_name,
        "access-table-name": resources.access_table_name,
        "queue-url": resources.queue_url,
        "dead-letter-queue-url": resources.dead_letter_queue_url,
        "documents-bucket": resources.bucket,
    }.items():
        ssm.put_parameter(Name=f"{path}/{name}", Value=value, Type="String")
    result = admin(resources, "keys", "create", "--tenant", "via-ssm", "--json", ssm_path=path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tenant"] == "via-ssm"


def test_a_created_key_works_on_the_api_and_stops_after_revoke(live_api: LiveApi) -> None:
    # live_api's cache bound is the default (30 s): only the refusal of a never-cached revoked key is immediate.
    created = json.loads(admin(live_api.resources, "keys", "create", "--tenant", "cli", "--json").stdout)
    with httpx.Client(base_url=live_api.base_url, timeout=30, headers=bearer(created["apiKey"])) as client:
        assert client.get("/api/v1/jobs/unknown").status_code == 404  # authenticated: the job just is not there
    other = json.loads(admin(live_api.resources, "keys", "create", "--tenant", "cli", "--json").stdout)
    assert admin(live_api.resources, "keys", "revoke", other["keyId"]).returncode == 0
    with httpx.Client(base_url=live_api.base_url, timeout=30, headers=bearer(other["apiKey"])) as client:
        assert client.get("/api/v1/jobs/unknown").status_code == 401
