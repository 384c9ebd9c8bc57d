"""cdk-nag AwsSolutions findings that were reviewed and accepted, each with the reason it is acceptable.

Every suppression names its finding (and, for IAM wildcards, the exact resource pattern) on the one construct
it concerns, so a new finding anywhere else still fails the check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_iam as iam
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

from runtime.adapters.dynamodb.schema import INDEXES

if TYPE_CHECKING:
    from stacks.service_stack import ServiceStack

XRAY = "X-Ray's PutTraceSegments/PutTelemetryRecords/GetSampling* actions support no resource-level permissions"
SSM_PATH = (
    "ssm:GetParametersByPath reads this environment's own hierarchy /job-tickets/<env>/*, which is how the "
    "runtime loads its settings (runtime/settings.py); no other path is readable"
)
_COUNT_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
TABLE_INDEXES = (
    f"Query on the table's own {_COUNT_WORDS[len(INDEXES)]} GSIs ({', '.join(index.name for index in INDEXES)}); "
    "Table.grant() scopes index access to <table arn>/index/*, which names no other table"
)
BASIC_EXECUTION = (
    "AWSLambdaBasicExecutionRole only allows writing this function's CloudWatch logs (CreateLogStream, "
    "PutLogEvents); it is the Lambda service's standard logging policy"
)
EXECUTION_ROLE = (
    "the task execution role needs ecr:GetAuthorizationToken, which supports no resource-level permissions; "
    "image pulls and log writes are scoped to the asset repository and the task's log group"
)


def _regex(pattern: str) -> RegexAppliesTo:
    return RegexAppliesTo(regex=f"/^{pattern}$/g")


XRAY_RESOURCE = "Resource::*"
SSM_RESOURCE = _regex(r"Resource::arn:aws:ssm:[a-z0-9-]+:<AWS::AccountId>:parameter\/job-tickets\/[a-z]+\/\*")
INDEX_RESOURCE = _regex(r"Resource::<JobStoreTable[0-9A-F]{8}\.Arn>\/index\/\*")
OBJECTS_RESOURCE = _regex(r"Resource::<DocumentsBucket[0-9A-F]{8}\.Arn>\/\*")
TASKS_RESOURCE = _regex(r"Resource::arn:aws:ecs:[a-z0-9-]+:<AWS::AccountId>:task\/<NetworkCluster[0-9A-F]{8}>\/\*")
BASIC_EXECUTION_POLICY = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def _suppress(construct: IConstruct, *suppressions: NagPackSuppression) -> None:
    NagSuppressions.add_resource_suppressions(construct, list(suppressions), apply_to_children=True)


# What every runtime role (API, worker, DLQ handler) is granted with a wildcard, and why.
RUNTIME_ROLE_SUPPRESSIONS = (
    NagPackSuppression(id="AwsSolutions-IAM5", reason=XRAY, applies_to=[XRAY_RESOURCE]),
    NagPackSuppression(id="AwsSolutions-IAM5", reason=TABLE_INDEXES, applies_to=[INDEX_RESOURCE]),
    NagPackSuppression(id="AwsSolutions-IAM5", reason=SSM_PATH, applies_to=[SSM_RESOURCE]),
)


def _role_policy(role: iam.IRole) -> IConstruct:
    """The DefaultPolicy of a role, where grants land."""
    return role.node.find_child("DefaultPolicy")


def suppress_reviewed_findings(service: ServiceStack | None) -> None:
    if service is None:
        return  # the stateful stack has no accepted findings: everything there passes

    dlq_role = service.dlq_handler.function.role
    assert dlq_role is not None
    _suppress(
        dlq_role,
        NagPackSuppression(id="AwsSolutions-IAM4", reason=BASIC_EXECUTION, applies_to=[BASIC_EXECUTION_POLICY]),
    )
    _suppress(
        _role_policy(dlq_role),
        *RUNTIME_ROLE_SUPPRESSIONS,
    )

    worker = service.worker.task_definition
    _suppress(
        _role_policy(worker.task_role),
        *RUNTIME_ROLE_SUPPRESSIONS,
        NagPackSuppression(
            id="AwsSolutions-IAM5",
            reason="job types read sources and write results under keys given in job params, anywhere in the "
            "documents bucket (GetObject/PutObject only, no list or delete)",
            applies_to=[OBJECTS_RESOURCE],
        ),
        NagPackSuppression(
            id="AwsSolutions-IAM5",
            reason="ecs:UpdateTaskProtection for the worker's scale-in protection: a task's own ARN is unknown "
            "before it starts, so the grant covers tasks of this cluster only (cluster.grant_task_protection)",
            applies_to=[TASKS_RESOURCE],
        ),
    )
    _suppress(
        _role_policy(worker.obtain_execution_role()),
        NagPackSuppression(id="AwsSolutions-IAM5", reason=EXECUTION_ROLE, applies_to=["Resource::*"]),
    )
    plain_environment = NagPackSuppression(
        id="AwsSolutions-ECS2",
        reason="the environment holds no secret: only JOBS_SSM_PATH, region, tracing switch, service name and "
        "shutdown deadline; the settings themselves are read from SSM Parameter Store at start",
    )
    _suppress(worker, plain_environment)

    if service.api_service is not None:
        api = service.api_service
        _suppress(
            _role_policy(api.task_definition.task_role),
            *RUNTIME_ROLE_SUPPRESSIONS,
        )
        _suppress(
            _role_policy(api.task_definition.obtain_execution_role()),
            NagPackSuppression(id="AwsSolutions-IAM5", reason=EXECUTION_ROLE, applies_to=["Resource::*"]),
        )
        _suppress(api.task_definition, plain_environment)
        _suppress(
            api.load_balancer.connections.security_groups[0],
            NagPackSuppression(
                id="AwsSolutions-EC23",
                reason="the public HTTP API: the internet-facing ALB accepts its listener port from anywhere; "
                "the tasks accept traffic only from the ALB's security group",
            ),
        )
        _suppress(
            api.access_logs_bucket,
            NagPackSuppression(
                id="AwsSolutions-S1",
                reason="this bucket is the ALB's access log destination; logging access to the log bucket would "
                "need another log bucket without adding an audit trail for the API",
            ),
        )

    if service.api_function is not None:
        function = service.api_function
        api_role = function.function.role
        assert api_role is not None
        _suppress(
            api_role,
            NagPackSuppression(id="AwsSolutions-IAM4", reason=BASIC_EXECUTION, applies_to=[BASIC_EXECUTION_POLICY]),
        )
        _suppress(
            _role_policy(api_role),
            *RUNTIME_ROLE_SUPPRESSIONS,
        )
        _suppress(
            function.http_api,
            NagPackSuppression(
                id="AwsSolutions-APIG4",
                reason="the job API has no authentication yet by design (API.md: callers are 'anonymous' until "
                "auth exists); throttling on the stage limits abuse",
            ),
        )
