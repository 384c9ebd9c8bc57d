"""Issue 10, item 5: status events on AWS. The jobs table's stream feeds an EventBridge pipe (filter, input template,
retries, DLQ) that puts each status change on the environment's bus; the pipe's role does exactly that."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from runtime.adapters.dynamodb.schema import STREAM_VIEW, Attr
from stacks.components.status_events import (
    DETAIL_TYPE,
    EVENT_SOURCE,
    MAX_RECORD_AGE,
    MAX_RETRY_ATTEMPTS,
    STREAM_READ_ACTIONS,
    status_change_filter,
)
from stacks.config import get_config
from tests.infra.conftest import EnvTemplates, synthesized

REPO = Path(__file__).resolve().parents[2]
TABLE = "JobStoreTableF88185D4"
# The contract's detail fields (API.md, "Status events on AWS").
DETAIL = {"jobId", "tenant", "jobType", "status", "previousStatus", "at"}


def _only(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, list(resources)
    return next(iter(resources.items()))


def _pipe(env: EnvTemplates) -> dict[str, Any]:
    assert env.service is not None
    return _only(env.resources(env.service, "AWS::Pipes::Pipe"))[1]


def _stateful_output(reference: Any) -> str:
    """The stateful stack's output a service stack value reads (CDK's weak cross-stack reference)."""
    assert isinstance(reference, dict) and set(reference) == {"Fn::GetStackOutput"}, reference
    return str(reference["Fn::GetStackOutput"]["OutputName"])


def _output_value(env: EnvTemplates, reference: Any) -> Any:
    return env.stateful["Outputs"][_stateful_output(reference)]["Value"]


def test_the_jobs_table_streams_new_and_old_images(deployed_env: EnvTemplates) -> None:
    properties = deployed_env.stateful["Resources"][TABLE]["Properties"]
    assert (
        properties["StreamSpecification"] == {"StreamViewType": STREAM_VIEW} == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    )


def test_each_environment_has_its_own_bus_kept_with_the_data(deployed_env: EnvTemplates) -> None:
    config = get_config(deployed_env.env_name)
    logical_id, bus = _only(deployed_env.resources(deployed_env.stateful, "AWS::Events::EventBus"))
    assert bus["Properties"]["Name"] == f"job-tickets-{deployed_env.env_name}"
    # Subscribers' rules live on the bus: it is as durable as the table.
    policy = "Retain" if config.protect_data else "Delete"
    assert (bus["DeletionPolicy"], bus["UpdateReplacePolicy"]) == (policy, policy)
    assert deployed_env.stateful["Outputs"]["StatusEventBusName"]["Value"] == {"Ref": logical_id}


def test_the_local_all_in_one_has_no_stream_bus_or_pipe() -> None:
    # The emulator has no EventBridge Pipes (moto's CloudFormation skips AWS::Pipes::Pipe): nothing would publish.
    local = synthesized("local")
    assert "StreamSpecification" not in local.stateful["Resources"][TABLE]["Properties"]
    assert not local.resources(local.stateful, "AWS::Events::EventBus")
    assert "StatusEventBusName" not in local.stateful["Outputs"]
    assert local.service is None


def test_the_pipe_reads_the_tables_stream_and_puts_on_the_bus(deployed_env: EnvTemplates) -> None:
    pipe = _pipe(deployed_env)["Properties"]
    bus_id, _ = _only(deployed_env.resources(deployed_env.stateful, "AWS::Events::EventBus"))
    assert _output_value(deployed_env, pipe["Source"]) == {"Fn::GetAtt": [TABLE, "StreamArn"]}
    assert _output_value(deployed_env, pipe["Target"]) == {"Fn::GetAtt": [bus_id, "Arn"]}
    assert pipe["TargetParameters"]["EventBridgeEventBusParameters"] == {
        "Source": EVENT_SOURCE,
        "DetailType": DETAIL_TYPE,
    }
    assert (EVENT_SOURCE, DETAIL_TYPE) == ("job-tickets", "Job Status Changed")


def test_the_filter_passes_only_updates_that_carry_the_status_change_marker(deployed_env: EnvTemplates) -> None:
    [criterion] = _pipe(deployed_env)["Properties"]["SourceParameters"]["FilterCriteria"]["Filters"]
    pattern = json.loads(criterion["Pattern"])
    assert pattern == status_change_filter()
    assert pattern["eventName"] == ["MODIFY"]
    assert pattern["dynamodb"]["NewImage"][Attr.PREVIOUS_STATUS] == {"S": [{"exists": True}]}


def test_the_input_template_builds_the_contracts_detail(deployed_env: EnvTemplates) -> None:
    template = _pipe(deployed_env)["Properties"]["TargetParameters"]["InputTemplate"]
    paths = re.findall(r'"<\$\.dynamodb\.NewImage\.(\w+)\.S>"', template)
    # Every placeholder quoted (string values) and every one from the record's new image: substituted, it is JSON.
    assert len(paths) == template.count("<")
    detail = json.loads(re.sub(r"<\$\.dynamodb\.NewImage\.(\w+)\.S>", lambda m: f"value of {m[1]}", template))
    assert set(detail) == DETAIL
    assert detail["previousStatus"] == f"value of {Attr.PREVIOUS_STATUS}"
    assert detail["at"] == f"value of {Attr.STATUS_CHANGED_AT}"
    assert detail["jobId"] == f"value of {Attr.JOB_ID}" and detail["status"] == f"value of {Attr.STATUS}"


def test_the_pipe_retries_then_dead_letters(deployed_env: EnvTemplates) -> None:
    assert deployed_env.service is not None
    stream = _pipe(deployed_env)["Properties"]["SourceParameters"]["DynamoDBStreamParameters"]
    queue_id, queue = _only(
        {
            k: v
            for k, v in deployed_env.resources(deployed_env.service, "AWS::SQS::Queue").items()
            if k.startswith("StatusEvents")
        }
    )
    assert stream["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert stream["MaximumRetryAttempts"] == MAX_RETRY_ATTEMPTS > 0
    assert stream["MaximumRecordAgeInSeconds"] == MAX_RECORD_AGE.to_seconds() <= 86_400  # the stream keeps 24 h
    assert stream["OnPartialBatchItemFailure"] == "AUTOMATIC_BISECT"
    assert stream["StartingPosition"] == "LATEST"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_the_pipes_role_reads_that_stream_puts_on_that_bus_and_nothing_else(deployed_env: EnvTemplates) -> None:
    assert deployed_env.service is not None
    pipe = _pipe(deployed_env)
    role_id = pipe["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    role = deployed_env.service["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "pipes.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert not role.get("ManagedPolicyArns") and not role.get("Policies")
    policies = {
        k: v
        for k, v in deployed_env.resources(deployed_env.service, "AWS::IAM::Policy").items()
        if {"Ref": role_id} in v["Properties"]["Roles"]
    }
    policy_id, policy = _only(policies)
    granted = {
        json.dumps(statement["Resource"], sort_keys=True): sorted(
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    }
    queue_id = pipe["Properties"]["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"]["Arn"]
    assert granted == {
        json.dumps(pipe["Properties"]["Source"], sort_keys=True): sorted(STREAM_READ_ACTIONS),
        json.dumps(pipe["Properties"]["Target"], sort_keys=True): ["events:PutEvents"],
        json.dumps(queue_id, sort_keys=True): ["sqs:SendMessage"],
    }
    # CloudFormation creates the pipe only once its role may read the stream.
    assert policy_id in pipe["DependsOn"]


def test_readme_subscribes_with_the_contracts_pattern() -> None:
    readme = (REPO / "README.md").read_text()
    [pattern] = re.findall(r"--event-pattern '(\{.*?\})'", readme, flags=re.S)
    assert json.loads(pattern)["source"] == [EVENT_SOURCE]
    assert json.loads(pattern)["detail-type"] == [DETAIL_TYPE]
    assert set(json.loads(pattern)["detail"]) <= DETAIL
    assert f"--event-bus-name {get_config('prod').status_event_bus_name} " in readme


def test_a_dead_lettered_status_event_raises_an_alarm(deployed_env: EnvTemplates) -> None:
    assert deployed_env.service is not None
    queue_id = _pipe(deployed_env)["Properties"]["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"][
        "Arn"
    ]["Fn::GetAtt"][0]
    alarm_id, alarm = _only(
        {
            k: v
            for k, v in deployed_env.resources(deployed_env.service, "AWS::CloudWatch::Alarm").items()
            if k.startswith("MonitoringStatusEventsDeadLettered")
        }
    )
    properties = alarm["Properties"]
    [metric] = properties["Metrics"]
    assert metric["MetricStat"]["Metric"] == {
        "Namespace": "AWS/SQS",
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}],
    }
    assert properties["Threshold"] == 1 and properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "MonitoringAlarmTopic" in json.dumps(properties["AlarmActions"]), alarm_id
