"""cdk-nag findings (AwsSolutions and NIST 800-53 rev 5 packs) that were reviewed and accepted, each with the
reason it is acceptable.

Every suppression names its finding (and, for IAM wildcards, the exact resource pattern) on the construct it
concerns, or on every construct of the one kind a reason holds for (log groups, grant policies), so a new
finding anywhere else still fails the check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

from runtime.adapters.dynamodb.schema import INDEXES
from runtime.job_types.confinement import TENANTS_PREFIX
from stacks.components.documents import results_objects_pattern

if TYPE_CHECKING:
    from stacks.service_stack import ServiceStack
    from stacks.stateful_stack import StatefulStack

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
EXECUTION_ROLE = (
    "the task execution role needs ecr:GetAuthorizationToken, which supports no resource-level permissions; "
    "image pulls and log writes are scoped to the asset repository and the task's log group"
)


def _regex(pattern: str) -> RegexAppliesTo:
    return RegexAppliesTo(regex=f"/^{pattern}$/g")


XRAY_RESOURCE = "Resource::*"
SSM_RESOURCE = _regex(r"Resource::arn:aws:ssm:[a-z0-9-]+:<AWS::AccountId>:parameter\/job-tickets\/[a-z]+\/\*")
INDEX_RESOURCE = _regex(r"Resource::<JobStoreTable[0-9A-F]{8}\.Arn>\/index\/\*")
OBJECTS_RESOURCE = _regex(r"Resource::<DocumentsBucket[0-9A-F]{8}\.Arn>\/" + TENANTS_PREFIX.replace("/", r"\/") + r"\*")
RESULTS_RESOURCE = _regex(
    r"Resource::<DocumentsBucket[0-9A-F]{8}\.Arn>\/" + results_objects_pattern().replace("/", r"\/").replace("*", r"\*")
)
RESULTS_READ = (
    "the API signs download links of results stored apart; they are under tenants/<tenant>/results/ for every "
    "tenant, so the grant names that pattern (GetObject only); the API links a caller only to its own tenant's"
)
API_ROLE_SUPPRESSIONS = (
    NagPackSuppression(id="AwsSolutions-IAM5", reason=RESULTS_READ, applies_to=[RESULTS_RESOURCE]),
)
TASKS_RESOURCE = _regex(r"Resource::arn:aws:ecs:[a-z0-9-]+:<AWS::AccountId>:task\/<NetworkCluster[0-9A-F]{8}>\/\*")

# NIST 800-53 rev 5 findings accepted for every resource of one kind.
LOG_GROUP_ENCRYPTION = (
    "CloudWatch Logs encrypts every log group at rest with service-managed keys; this app uses no customer-managed "
    "KMS key (key policy per log group, per-key cost) because no requirement here calls for one"
)
GRANT_POLICIES = (
    "each AWS::IAM::Policy here is the DefaultPolicy CDK's grant_*() methods write for exactly one role, attached "
    "to that role only and created and deleted with it; a managed policy would only make it attachable elsewhere"
)
LAMBDA_CONCURRENCY = (
    "the API function has no reserved concurrency: it is bounded by the HTTP API stage throttle (rate and burst "
    "from stacks/config.py), and a reservation large enough for its peak would be taken from the account's "
    "unreserved pool whether used or not (the DLQ handler has its own reservation)"
)
LAMBDA_DLQ = (
    "a Lambda dead-letter queue only applies to asynchronous invocations; the API function is invoked "
    "synchronously by API Gateway and the DLQ handler by an SQS event source mapping, whose failed records stay "
    "on the dead-letter queue (ReportBatchItemFailures)"
)
CALLBACK_LAMBDA_DLQ = (
    "a Lambda dead-letter queue only applies to asynchronous invocations; the callback function is invoked by an SQS "
    "event source mapping, and a record it keeps failing moves to the callback queue's own dead-letter queue "
    "(redrive policy, ReportBatchItemFailures); an endpoint's failures are retried by new delayed messages"
)
CALLBACK_LAMBDA_OUTSIDE_VPC = (
    "outside any VPC on purpose: the function POSTs to customers' public callback URLs, and outside the VPC it "
    "cannot reach the application's private network at all, a second line of defence beside the address check "
    "(runtime/callbacks/addresses.py) against callbacks aimed at internal hosts"
)
LAMBDA_OUTSIDE_VPC = (
    "the functions call only AWS APIs (DynamoDB, SQS, SSM, X-Ray) over TLS with IAM authentication and reach no "
    "private resource; inside the VPC their AWS calls would leave through the NAT gateway instead"
)
PUBLIC_SUBNET_ROUTE = (
    "the public subnets hold only the internet-facing load balancer and the NAT gateways, which need the route "
    "to the internet gateway; the tasks run in private subnets without public addresses"
)
ALARM_TOPIC_KMS = (
    "alarm notifications carry alarm names, states, thresholds and metric values, no job data; SNS encryption "
    "with a customer-managed key would also need a key policy for CloudWatch alarms to publish"
)
ACCESS_LOG_BUCKET = {
    "NIST.800.53.R5-S3BucketLoggingEnabled": (
        "this bucket is the ALB's access log destination; logging access to it would need yet another log bucket "
        "and add no audit trail for the API"
    ),
    "NIST.800.53.R5-S3BucketReplicationEnabled": (
        "ALB access logs are operational records kept 90 days in the environment's region; a second-region copy "
        "is not part of this app's recovery plan (the job data lives in the stateful stack)"
    ),
    "NIST.800.53.R5-S3BucketVersioningEnabled": (
        "log objects are written once by the ELB log delivery service, never overwritten, and expire after 90 "
        "days; versions would only keep copies of expired logs"
    ),
    "NIST.800.53.R5-S3DefaultEncryptionKMS": (
        "ALB access log delivery supports only SSE-S3 (AES-256) on the destination bucket, not SSE-KMS"
    ),
}
DOCUMENTS_REPLICATION = (
    "the bucket lives in the environment's one region; versioning (documents bucket) and lifecycle rules keep "
    "overwritten and deleted objects recoverable, and a cross-region copy is not part of this app's design"
)
DOCUMENTS_KMS = (
    "SSE-S3 (AES-256) encrypts every object at rest; a customer-managed KMS key would add a KMS call per object "
    "request and a key grant for every reader, and no requirement of this app calls for one"
)
SERVER_ACCESS_LOGS_KMS = (
    "S3 server access log delivery supports only SSE-S3 (AES-256) default encryption on the target bucket"
)
SERVER_ACCESS_LOGS_VERSIONING = (
    "server access log objects are written once by the S3 logging service and never overwritten; they expire by "
    "the lifecycle rule, and versions would only keep copies of expired logs"
)
TABLE_BACKUP = (
    "point-in-time recovery is on (continuous backups, restore to any second of the last 35 days) and deletion "
    "is guarded in protected environments; an AWS Backup plan would add a schedule this app does not manage"
)


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


def _nist(rule: str, reason: str) -> NagPackSuppression:
    return NagPackSuppression(id=f"NIST.800.53.R5-{rule}", reason=reason)


def _suppress_all(stack: Stack, kind: type, *suppressions: NagPackSuppression) -> None:
    for node in stack.node.find_all():
        if isinstance(node, kind):
            _suppress(node, *suppressions)


def suppress_reviewed_findings(stateful: StatefulStack, service: ServiceStack | None) -> None:
    _suppress_stateful(stateful)
    if service is not None:
        _suppress_service(service)


def _suppress_stateful(stateful: StatefulStack) -> None:
    # Only NIST 800-53 findings: AwsSolutions has nothing to object to in the stateful stack.
    for table in (stateful.job_store.table, stateful.access_store.table):
        _suppress(table, _nist("DynamoDBInBackupPlan", TABLE_BACKUP))
    documents = stateful.documents
    _suppress(
        documents.bucket,
        _nist("S3BucketReplicationEnabled", DOCUMENTS_REPLICATION),
        _nist("S3DefaultEncryptionKMS", DOCUMENTS_KMS),
    )
    _suppress(
        documents.access_logs_bucket,
        _nist("S3BucketReplicationEnabled", DOCUMENTS_REPLICATION),
        _nist("S3DefaultEncryptionKMS", SERVER_ACCESS_LOGS_KMS),
        _nist("S3BucketVersioningEnabled", SERVER_ACCESS_LOGS_VERSIONING),
    )


def _suppress_service(service: ServiceStack) -> None:
    _suppress_all(service, logs.CfnLogGroup, _nist("CloudWatchLogGroupEncrypted", LOG_GROUP_ENCRYPTION))
    _suppress_all(service, iam.CfnPolicy, _nist("IAMNoInlinePolicy", GRANT_POLICIES))
    _suppress(
        service.network.vpc,
        _nist(
            "VPCDefaultSecurityGroupClosed",
            "no resource of this app uses the VPC's default security group; closing its rules would need CDK's "
            "custom-resource Lambda (restrictDefaultSecurityGroup), which this app leaves out",
        ),
    )
    if service.status_events is not None:
        _suppress(
            service.status_events.dead_letter_queue,
            NagPackSuppression(
                id="AwsSolutions-SQS3",
                reason="this queue is itself a dead-letter queue: the status events pipe's DeadLetterConfig, which "
                "cdk-nag cannot see as one because only SQS redrive policies and event source mappings count",
            ),
        )
    for subnet in service.network.vpc.public_subnets:
        _suppress(subnet, _nist("VPCNoUnrestrictedRouteToIGW", PUBLIC_SUBNET_ROUTE))
    _suppress(service.monitoring.alarm_topic, _nist("SNSEncryptedKMS", ALARM_TOPIC_KMS))
    _suppress(
        service.dlq_handler.function, _nist("LambdaDLQ", LAMBDA_DLQ), _nist("LambdaInsideVPC", LAMBDA_OUTSIDE_VPC)
    )
    if service.api_function is not None:
        _suppress(
            service.api_function.function,
            _nist("LambdaConcurrency", LAMBDA_CONCURRENCY),
            _nist("LambdaDLQ", LAMBDA_DLQ),
            _nist("LambdaInsideVPC", LAMBDA_OUTSIDE_VPC),
        )

    dlq_role = service.dlq_handler.function.role
    assert dlq_role is not None
    _suppress(
        _role_policy(dlq_role),
        *RUNTIME_ROLE_SUPPRESSIONS,
    )
    delivery = service.callback_delivery.function
    _suppress(
        delivery,
        _nist("LambdaDLQ", CALLBACK_LAMBDA_DLQ),
        _nist("LambdaInsideVPC", CALLBACK_LAMBDA_OUTSIDE_VPC),
    )
    assert delivery.role is not None
    _suppress(_role_policy(delivery.role), *RUNTIME_ROLE_SUPPRESSIONS)

    worker = service.worker.task_definition
    _suppress(
        _role_policy(worker.task_role),
        *RUNTIME_ROLE_SUPPRESSIONS,
        NagPackSuppression(
            id="AwsSolutions-IAM5",
            reason="job types read sources and write results under keys given in job params, only under the "
            "tenants/ prefix of the documents bucket, where the worker confines each job to its own tenant's "
            "prefix (GetObject/PutObject only, no list or delete)",
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
        reason="the environment holds no secret: only JOBS_SSM_PATH, region, tracing switch, the collector's address "
        "and configuration, service name and shutdown deadline; the settings themselves are read from SSM at start",
    )
    plain_api_environment = NagPackSuppression(
        id="AwsSolutions-ECS2",
        reason="the environment holds no secret: JOBS_SSM_PATH, region, tracing switch, service name and, when an "
        "issuer is configured, the public OIDC issuer, audience, JWKS URL and tenant claim name; the settings "
        "themselves are read from SSM Parameter Store at start",
    )
    _suppress(worker, plain_environment)

    if service.api_service is not None:
        api = service.api_service
        _suppress(
            _role_policy(api.task_definition.task_role),
            *RUNTIME_ROLE_SUPPRESSIONS,
            *API_ROLE_SUPPRESSIONS,
        )
        _suppress(
            _role_policy(api.task_definition.obtain_execution_role()),
            NagPackSuppression(id="AwsSolutions-IAM5", reason=EXECUTION_ROLE, applies_to=["Resource::*"]),
        )
        _suppress(api.task_definition, plain_api_environment)
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
            *(_nist(rule.removeprefix("NIST.800.53.R5-"), reason) for rule, reason in ACCESS_LOG_BUCKET.items()),
        )
        assert api.service.redirect_listener is not None  # redirect_http=True
        _suppress(
            api.service.redirect_listener,
            _nist(
                "ELBv2ACMCertificateRequired",
                "the port-80 listener has no certificate because it serves nothing: its only action redirects "
                "to https on 443, whose listener uses the ACM certificate",
            ),
        )
        if not service.config.api.load_balancer_deletion_protection:
            _suppress(
                api.load_balancer,
                _nist(
                    "ELBDeletionProtectionEnabled",
                    "deletion protection is on for prod's load balancer only; in this environment the service "
                    "stack, which holds no data, may be deleted and recreated at will",
                ),
            )
        assert service.web_acl is not None
        _suppress(
            service.web_acl.web_acl,
            _nist(
                "WAFv2LoggingEnabled",
                "full WAF request logs would record every request's headers, bearer tokens (API keys, JWTs) "
                "included; CloudWatch metrics and sampled requests are on for every rule instead",
            ),
        )

    if service.api_function is not None:
        function = service.api_function
        api_role = function.function.role
        assert api_role is not None
        _suppress(
            _role_policy(api_role),
            *RUNTIME_ROLE_SUPPRESSIONS,
            *API_ROLE_SUPPRESSIONS,
        )
        if function.jwt_authorizer is None:
            _suppress(
                function.http_api,
                NagPackSuppression(
                    id="AwsSolutions-APIG4",
                    reason="no OIDC issuer in this environment, so no gateway authorizer: the application "
                    "authenticates every /api/v1 request itself with API keys (401 without a valid one); "
                    "/healthz, /readyz, /docs and /openapi.json are open by contract (API.md)",
                ),
            )
        for route in function.open_routes:
            _suppress(
                route,
                NagPackSuppression(
                    id="AwsSolutions-APIG4",
                    reason="/healthz, /readyz, /docs and /openapi.json are open by contract (API.md); every other "
                    "route, /api/v1 included, has the JWT authorizer",
                ),
            )
