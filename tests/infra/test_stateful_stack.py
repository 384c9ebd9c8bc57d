"""Issue 3, point 1: the stateful stack of every environment (table, queues, bucket, parameters)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from runtime.adapters.dynamodb.schema import TTL_ATTRIBUTE
from stacks.config import get_config
from tests.infra.conftest import EnvTemplates
from tests.infra.table_shapes import TABLE_KEY_SCHEMA, attribute_definitions, global_secondary_indexes

# Construct IDs are a contract: a changed logical ID means CloudFormation replaces the resource (data loss).
PINNED_LOGICAL_IDS = {
    "JobStoreTableF88185D4": "AWS::DynamoDB::Table",
    "AccessStoreTableE32877BF": "AWS::DynamoDB::Table",
    "QueuesJobsQueueED92C26D": "AWS::SQS::Queue",
    "QueuesHighPriorityQueueDF7F2C44": "AWS::SQS::Queue",
    "QueuesLowPriorityQueueCF85CB4D": "AWS::SQS::Queue",
    "QueuesDeadLetterQueue82AA3FB7": "AWS::SQS::Queue",
    "DocumentsBucket089EA665": "AWS::S3::Bucket",
    "DocumentsAccessLogsBucketDA10EE7C": "AWS::S3::Bucket",
    "Parametersenvironment03DD29EB": "AWS::SSM::Parameter",
    "Parameterstablename6C58AE13": "AWS::SSM::Parameter",
    "Parametersaccesstablename0790D8FE": "AWS::SSM::Parameter",
    "Parametersqueueurl300B74A4": "AWS::SSM::Parameter",
    "Parametershighpriorityqueueurl01B52C09": "AWS::SSM::Parameter",
    "Parameterslowpriorityqueueurl65EE0986": "AWS::SSM::Parameter",
    "Parametersdeadletterqueueurl6B76AAE4": "AWS::SSM::Parameter",
    "ParametersdocumentsbucketB61172A3": "AWS::SSM::Parameter",
    "ParametersvisibilitytimeoutsCB82FCC2": "AWS::SSM::Parameter",
    "Parametersmaxattempts96BDB9C8": "AWS::SSM::Parameter",
    "ParametersworkerconcurrencyBB7C2351": "AWS::SSM::Parameter",
    "Parametersretentiondays948E1003": "AWS::SSM::Parameter",
    "Parametersrepublishafters53FAEA13": "AWS::SSM::Parameter",
    "ParametersrepublishintervalsE9D26BC8": "AWS::SSM::Parameter",
    "CallbacksQueueE66F73FB": "AWS::SQS::Queue",
    "CallbacksDeadLetterQueueEB77269F": "AWS::SQS::Queue",
    "Parameterscallbackqueueurl3D933324": "AWS::SSM::Parameter",
}
# Only the local environment lets callbacks go to loopback (runtime Settings refuse it anywhere else too).
LOCAL_ONLY_LOGICAL_IDS = {"Parameterscallbackallowloopback7F9ABF90": "AWS::SSM::Parameter"}
STATEFUL_TYPES = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::S3::Bucket"}
ACCESS_TABLE = "AccessStoreTableE32877BF"
TABLE, JOBS_QUEUE, DLQ, BUCKET = (
    "JobStoreTableF88185D4",
    "QueuesJobsQueueED92C26D",
    "QueuesDeadLetterQueue82AA3FB7",
    "DocumentsBucket089EA665",
)
HIGH_QUEUE, LOW_QUEUE = "QueuesHighPriorityQueueDF7F2C44", "QueuesLowPriorityQueueCF85CB4D"
PRIORITY_QUEUES = (HIGH_QUEUE, JOBS_QUEUE, LOW_QUEUE)  # JOBS_QUEUE is the normal priority's


def _resource(env: EnvTemplates, logical_id: str) -> dict[str, Any]:
    return env.stateful["Resources"][logical_id]


def _denies_plain_http(action: str) -> dict[str, Any]:
    """A resource policy document with a statement denying `action` to requests without TLS (enforce_ssl)."""
    condition = {"Bool": {"aws:SecureTransport": "false"}}
    return {
        "Statement": Match.array_with([Match.object_like({"Effect": "Deny", "Action": action, "Condition": condition})])
    }


def test_logical_ids_of_stateful_resources_are_pinned(any_env: EnvTemplates) -> None:
    actual = {
        logical_id: resource["Type"]
        for logical_id, resource in any_env.stateful["Resources"].items()
        if resource["Type"] in STATEFUL_TYPES | {"AWS::SSM::Parameter"}
    }
    expected = PINNED_LOGICAL_IDS | (LOCAL_ONLY_LOGICAL_IDS if any_env.env_name == "local" else {})
    assert actual == expected


def test_table(any_env: EnvTemplates) -> None:
    Template.from_json(any_env.stateful).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": TABLE_KEY_SCHEMA,
            "AttributeDefinitions": attribute_definitions(),
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "GlobalSecondaryIndexes": global_secondary_indexes(),
        },
    )
    assert "ProvisionedThroughput" not in _resource(any_env, TABLE)["Properties"]


def test_access_table_is_built_from_the_runtime_schema(any_env: EnvTemplates) -> None:
    from runtime.adapters.dynamodb import access_schema as schema

    properties = _resource(any_env, ACCESS_TABLE)["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": schema.PARTITION_KEY, "KeyType": "HASH"}]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["GlobalSecondaryIndexes"] == [
        {
            "IndexName": schema.TENANT_INDEX,
            "KeySchema": [
                {"AttributeName": schema.TENANT_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": schema.TENANT_INDEX_SORT_KEY, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(schema.TENANT_INDEX_PROJECTED)},
        }
    ]
    assert "TimeToLiveSpecification" not in properties  # keys and secrets live until revoked or rotated


def test_queues(any_env: EnvTemplates) -> None:
    config = get_config(any_env.env_name)
    jobs = _resource(any_env, JOBS_QUEUE)["Properties"]
    dlq = _resource(any_env, DLQ)["Properties"]
    assert jobs["VisibilityTimeout"] == config.worker.visibility_timeout_s
    assert jobs["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [DLQ, "Arn"]},
        "maxReceiveCount": config.worker.max_attempts,
    }
    assert jobs["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    # One queue per priority, alike in every setting (so in their redrive to the one DLQ) but the tags' order.
    for queue in (HIGH_QUEUE, LOW_QUEUE):
        assert _resource(any_env, queue)["Properties"] == jobs, queue
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    # The DLQ Lambda's event source requires the DLQ's visibility timeout >= the function timeout.
    assert dlq["VisibilityTimeout"] >= config.dlq_handler_timeout_s
    template = Template.from_json(any_env.stateful)
    for queue in (*PRIORITY_QUEUES, DLQ):
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy", {"Queues": [{"Ref": queue}], "PolicyDocument": _denies_plain_http("sqs:*")}
        )


def test_documents_bucket(any_env: EnvTemplates) -> None:
    bucket = _resource(any_env, BUCKET)["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "DocumentsAccessLogsBucketDA10EE7C"}
    Template.from_json(any_env.stateful).has_resource_properties(
        "AWS::S3::BucketPolicy", {"Bucket": {"Ref": BUCKET}, "PolicyDocument": _denies_plain_http("s3:*")}
    )


def test_parameters_are_named_after_the_runtime_settings(any_env: EnvTemplates) -> None:
    from runtime.settings import Settings

    config = get_config(any_env.env_name)
    parameters = {
        resource["Properties"]["Name"]: resource["Properties"]["Value"]
        for resource in any_env.resources(any_env.stateful, "AWS::SSM::Parameter").values()
    }
    prefix = f"/job-tickets/{any_env.env_name}/"
    assert all(name.startswith(prefix) for name in parameters)
    fields = {name.removeprefix(prefix).replace("-", "_") for name in parameters}
    assert fields <= set(Settings.model_fields), fields - set(Settings.model_fields)
    assert parameters[prefix + "environment"] == any_env.env_name
    assert parameters[prefix + "table-name"] == {"Ref": TABLE}
    assert parameters[prefix + "access-table-name"] == {"Ref": ACCESS_TABLE}
    assert parameters[prefix + "queue-url"] == {"Ref": JOBS_QUEUE}
    assert parameters[prefix + "high-priority-queue-url"] == {"Ref": HIGH_QUEUE}
    assert parameters[prefix + "low-priority-queue-url"] == {"Ref": LOW_QUEUE}
    assert parameters[prefix + "dead-letter-queue-url"] == {"Ref": DLQ}
    assert parameters[prefix + "documents-bucket"] == {"Ref": BUCKET}
    assert parameters[prefix + "visibility-timeout-s"] == str(config.worker.visibility_timeout_s)
    assert parameters[prefix + "max-attempts"] == str(config.worker.max_attempts)
    assert parameters[prefix + "worker-concurrency"] == str(config.worker.concurrency)
    assert parameters[prefix + "retention-days"] == str(config.retention_days)
    assert parameters[prefix + "republish-after-s"] == str(config.republish_after_s)
    assert parameters[prefix + "republish-interval-s"] == str(config.republish_interval_s)


@pytest.mark.parametrize(
    ("env_name", "protected"), [("local", False), ("dev", False), ("staging", True), ("prod", True)]
)
def test_retention_and_termination_protection(env_name: str, protected: bool) -> None:
    from tests.infra.conftest import synthesized

    env = synthesized(env_name)
    policy = "Retain" if protected else "Delete"
    for logical_id in (TABLE, ACCESS_TABLE, JOBS_QUEUE, DLQ, BUCKET, "DocumentsAccessLogsBucketDA10EE7C"):
        resource = env.stateful["Resources"][logical_id]
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == (policy, policy), logical_id
    for table in (TABLE, ACCESS_TABLE):
        assert env.stateful["Resources"][table]["Properties"]["DeletionProtectionEnabled"] is protected
    stack = env.synthesized.stacks.stateful
    assert stack.termination_protection is protected


def test_generated_physical_names_only(any_env: EnvTemplates) -> None:
    for resource in any_env.stateful["Resources"].values():
        assert not {"TableName", "QueueName", "BucketName"} & set(resource.get("Properties", {}))


def test_emulator_deployable_no_assets_or_custom_resources(any_env: EnvTemplates) -> None:
    types = {resource["Type"] for resource in any_env.stateful["Resources"].values()}
    assert not any(t.startswith("Custom::") or t.startswith("AWS::Lambda::") for t in types), types
    assert "CheckBootstrapVersion" not in any_env.stateful.get("Rules", {})
    assert "BootstrapVersion" not in any_env.stateful.get("Parameters", {})


def test_the_callback_queue_redrives_to_its_own_dead_letter_queue_and_outlasts_the_function(
    any_env: EnvTemplates,
) -> None:
    queue = _resource(any_env, "CallbacksQueueE66F73FB")["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["CallbacksDeadLetterQueueEB77269F", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * get_config(any_env.env_name).callbacks.function_timeout_s
    assert queue["SqsManagedSseEnabled"] is True
