"""Status events (API.md "Status events on AWS"): every status change of a job is published to the environment's
EventBridge bus, with no code of this project on the way: the jobs table's stream -> an EventBridge pipe (filter,
input template) -> the bus.

The pipe's filter sees one stream record at a time and cannot compare its old image with its new one; the store
marks status changes instead (runtime/adapters/dynamodb/schema.py, "Status events"), and the filter passes the
MODIFY records whose new image carries the marker."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from runtime.adapters.dynamodb.schema import Attr

# The contract's names (API.md): what subscribers match on.
EVENT_SOURCE = "job-tickets"
DETAIL_TYPE = "Job Status Changed"
# Each failed batch is retried (Pipes backs off exponentially, and bisects a failing batch to isolate the one
# record that fails); a record still undelivered after these retries or this age goes to the pipe's DLQ (its
# shard and sequence numbers: the record itself stays readable in the stream for 24 hours), so that one bad
# record never holds up the status events of its shard for longer.
MAX_RETRY_ATTEMPTS = 10
MAX_RECORD_AGE = Duration.hours(1)
DEAD_LETTER_RETENTION = Duration.days(14)
# detail fields -> the attribute of the record's new image each comes from (strings, "S").
DETAIL_FIELDS = {
    "jobId": Attr.JOB_ID,
    "tenant": Attr.TENANT,
    "jobType": Attr.JOB_TYPE,
    "status": Attr.STATUS,
    "previousStatus": Attr.PREVIOUS_STATUS,
    "at": Attr.STATUS_CHANGED_AT,
}
# What the pipe needs of the stream (the actions the Pipes documentation lists for a DynamoDB stream source).
STREAM_READ_ACTIONS = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)


def _exists() -> dict[str, list[dict[str, bool]]]:
    return {"S": [{"exists": True}]}


def status_change_filter() -> dict[str, Any]:
    """The pipe's filter pattern: updates (never a create or a TTL deletion) whose new image carries the
    status-change marker, of jobs that have a tenant (every job since tenants exist; the detail names it)."""
    return {
        "eventName": ["MODIFY"],
        "dynamodb": {"NewImage": {Attr.PREVIOUS_STATUS: _exists(), Attr.TENANT: _exists()}},
    }


def detail_template() -> str:
    """The pipe's input template: the event's detail, every field a string of the record's new image (quoted
    placeholders, as Pipes requires for string values)."""
    fields = ", ".join(f'"{field}": "<$.dynamodb.NewImage.{attr}.S>"' for field, attr in DETAIL_FIELDS.items())
    return "{" + fields + "}"


class StatusEventBus(Construct):
    """The environment's bus, in the stateful stack: subscribers' rules live on it and must outlive deployments
    of the service stack. Named `job-tickets-<env>` so subscribers can find it."""

    def __init__(self, scope: Construct, construct_id: str, *, bus_name: str, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name)
        self.bus.apply_removal_policy(removal_policy)


class StatusEventsPipe(Construct):
    """The pipe from the table's stream to the bus, its role (read that stream, put events on that bus, send to
    its own DLQ: nothing else) and its DLQ."""

    def __init__(self, scope: Construct, construct_id: str, *, table: dynamodb.ITable, bus: events.IEventBus) -> None:
        super().__init__(scope, construct_id)
        stream_arn = table.table_stream_arn
        if stream_arn is None:
            raise ValueError("the jobs table has no stream: status events need one")
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "pipes.amazonaws.com",
                # Only pipes of this account may use the role (confused deputy).
                conditions={"StringEquals": {"aws:SourceAccount": table.stack.account}},
            ),
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=list(STREAM_READ_ACTIONS), resources=[stream_arn]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus.event_bus_arn]))
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn])
        )
        self.pipe = pipes.CfnPipe(
            self,
            "Pipe",
            description="job status changes from the jobs table's stream to the environment's bus",
            role_arn=self.role.role_arn,
            source=stream_arn,
            source_parameters=pipes.CfnPipe.PipeSourceParametersProperty(
                dynamo_db_stream_parameters=pipes.CfnPipe.PipeSourceDynamoDBStreamParametersProperty(
                    starting_position="LATEST",
                    maximum_retry_attempts=MAX_RETRY_ATTEMPTS,
                    maximum_record_age_in_seconds=int(MAX_RECORD_AGE.to_seconds()),
                    on_partial_batch_item_failure="AUTOMATIC_BISECT",
                    dead_letter_config=pipes.CfnPipe.DeadLetterConfigProperty(arn=self.dead_letter_queue.queue_arn),
                ),
                filter_criteria=pipes.CfnPipe.FilterCriteriaProperty(
                    filters=[pipes.CfnPipe.FilterProperty(pattern=json.dumps(status_change_filter()))]
                ),
            ),
            target=bus.event_bus_arn,
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                input_template=detail_template(),
                event_bridge_event_bus_parameters=pipes.CfnPipe.PipeTargetEventBridgeEventBusParametersProperty(
                    source=EVENT_SOURCE, detail_type=DETAIL_TYPE
                ),
            ),
        )
        # The role's policy must exist before the pipe starts reading, or its first calls are refused.
        policy = self.role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.pipe.node.add_dependency(policy)
