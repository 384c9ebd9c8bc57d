"""The local all-in-one's provisioning against moto's server: deploy, TTL, outputs, template cache."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from runtime.adapters.dynamodb.schema import TABLE_KEY, TTL_ATTRIBUTE
from runtime.local import provision


def tiny_stateful_template(suffix: str) -> dict[str, Any]:
    """A hand-written stand-in with the outputs the real stateful stack gives (not the real definition)."""
    return {
        "Resources": {
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "AttributeDefinitions": [{"AttributeName": TABLE_KEY.name, "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": TABLE_KEY.name, "KeyType": "HASH"}],
                    "BillingMode": "PAY_PER_REQUEST",
                    "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
                },
            },
            "AccessTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            },
            "DeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"dlq-{suffix}"}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"jobs-{suffix}"}},
            "CallbackQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"callbacks-{suffix}"}},
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": f"documents-{suffix}"}},
        },
        "Outputs": {
            "TableName": {"Value": {"Ref": "Table"}},
            "AccessTableName": {"Value": {"Ref": "AccessTable"}},
            "QueueUrl": {"Value": {"Ref": "Queue"}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
            "DocumentsBucketName": {"Value": {"Ref": "Bucket"}},
            "SsmPath": {"Value": f"/tests/{suffix}"},
            "CallbackQueueUrl": {"Value": {"Ref": "CallbackQueue"}},
        },
    }


def test_deploy_creates_the_stack_and_applies_time_to_live(moto_server: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    resources = provision.deploy(
        tiny_stateful_template(suffix), endpoint_url=moto_server, stack_name=f"provision-{suffix}"
    )
    assert resources.queue_url.endswith(f"/jobs-{suffix}")
    assert resources.dead_letter_queue_url.endswith(f"/dlq-{suffix}")
    assert resources.documents_bucket == f"documents-{suffix}"
    assert resources.ssm_path == f"/tests/{suffix}"
    assert resources.callback_queue_url.endswith(f"/callbacks-{suffix}")
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server)
    ttl = dynamodb.describe_time_to_live(TableName=resources.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}

    # A second deploy of the same template (an emulator that outlived a run) is an update, not an error.
    again = provision.deploy(tiny_stateful_template(suffix), endpoint_url=moto_server, stack_name=f"provision-{suffix}")
    assert again == resources


def test_deploy_names_the_missing_outputs(moto_server: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    template = tiny_stateful_template(suffix)
    del template["Outputs"]["SsmPath"]
    with pytest.raises(RuntimeError, match="SsmPath"):
        provision.deploy(template, endpoint_url=moto_server, stack_name=f"provision-{suffix}")


def test_template_cache_is_keyed_by_the_stack_sources(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    (repo / "stacks" / "__init__.py").write_text(
        "def stateful_template(env_name):\n    return {'Env': env_name, 'Resources': {}}\n"
    )
    cache = tmp_path / "cache"
    first = provision.stateful_template("local", cache_dir=cache, repo_root=repo)
    assert first == {"Env": "local", "Resources": {}}
    (cached,) = cache.iterdir()
    assert json.loads(cached.read_text()) == first

    # The cache is what is read while the sources are unchanged...
    cached.write_text(json.dumps({"Env": "from-cache"}))
    assert provision.stateful_template("local", cache_dir=cache, repo_root=repo) == {"Env": "from-cache"}

    # ...and a change to any stack source synthesizes again and replaces the stale entry.
    (repo / "stacks" / "extra.py").write_text("X = 1\n")
    assert provision.stateful_template("local", cache_dir=cache, repo_root=repo) == first
    assert len(list(cache.iterdir())) == 1


def test_a_failing_synthesis_is_reported(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    (repo / "stacks" / "__init__.py").write_text("def stateful_template(env_name):\n    raise ValueError('bad env')\n")
    with pytest.raises(RuntimeError, match="bad env"):
        provision.stateful_template("nowhere", cache_dir=tmp_path / "cache", repo_root=repo)
