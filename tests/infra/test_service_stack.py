"""Issue 3, points 2 and 3: cluster, API (both modes), worker, DLQ Lambda, images from the repo's Dockerfile."""

from __future__ import annotations

from typing import Any

import yaml
from aws_cdk.assertions import Match, Template

from stacks.config import get_config
from tests.infra.conftest import EnvTemplates


def _one(env: EnvTemplates, resource_type: str, predicate: Any = None) -> dict[str, Any]:
    assert env.service is not None
    found = [
        r["Properties"]
        for r in env.resources(env.service, resource_type).values()
        if predicate is None or predicate(r["Properties"])
    ]
    assert len(found) == 1, (resource_type, len(found))
    return found[0]


def _task(env: EnvTemplates, label: str) -> dict[str, Any]:
    return _one(
        env,
        "AWS::ECS::TaskDefinition",
        lambda p: p["ContainerDefinitions"][0].get("DockerLabels", {}).get("service") == label,
    )


def test_cluster_has_container_insights(deployed_env: EnvTemplates) -> None:
    cluster = _one(deployed_env, "AWS::ECS::Cluster")
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


def test_vpc_has_flow_logs_and_gateway_endpoints(deployed_env: EnvTemplates) -> None:
    assert deployed_env.service is not None
    assert deployed_env.resources(deployed_env.service, "AWS::EC2::FlowLog")
    assert len(deployed_env.resources(deployed_env.service, "AWS::EC2::VPCEndpoint")) == 2


def test_api_on_fargate_behind_alb(prod: EnvTemplates) -> None:
    target_group = _one(prod, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert target_group["HealthCheckPath"] == "/healthz"
    assert target_group["Matcher"] == {"HttpCode": "200"}
    service = _one(prod, "AWS::ECS::Service", lambda p: p["LoadBalancers"])
    deployment = service["DeploymentConfiguration"]
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert deployment["MinimumHealthyPercent"] == 100
    assert service["LoadBalancers"][0]["ContainerPort"] == 8080
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    load_balancer = _one(prod, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    attributes = {a["Key"]: a["Value"] for a in load_balancer["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"


def test_worker_scales_on_backlog_and_keeps_one_task(deployed_env: EnvTemplates) -> None:
    worker = get_config(deployed_env.env_name).worker
    target = _one(
        deployed_env, "AWS::ApplicationAutoScaling::ScalableTarget", lambda p: "Worker" in str(p["ResourceId"])
    )
    assert target["MinCapacity"] == worker.min_capacity >= 1
    assert target["MaxCapacity"] == worker.max_capacity
    assert deployed_env.service is not None
    alarms = [
        alarm["Properties"]
        for logical_id, alarm in deployed_env.resources(deployed_env.service, "AWS::CloudWatch::Alarm").items()
        if logical_id.startswith("WorkerService") and "QueueMessagesVisibleScaling" in logical_id
    ]
    # The fast path only scales out (target tracking scales in: tests/infra/test_outage_monitoring.py).
    assert {alarm["ComparisonOperator"] for alarm in alarms} == {"GreaterThanOrEqualToThreshold"}
    assert {alarm["Threshold"] for alarm in alarms} == {2 * worker.backlog_per_task}
    for alarm in alarms:
        # The backlog per task of every priority's queue (metric math).
        expression, *inputs = alarm["Metrics"]
        assert expression["ReturnData"] is True and "MetricStat" not in expression
        assert all(query["Id"] in expression["Expression"] for query in inputs)
        queue_outputs = set()
        for query in inputs:
            metric = query["MetricStat"]["Metric"]
            assert query["ReturnData"] is False
            if metric["Namespace"] == "ECS/ContainerInsights":
                assert metric["MetricName"] == "RunningTaskCount"
                continue
            assert metric["Namespace"] == "AWS/SQS"
            assert metric["MetricName"].startswith("ApproximateNumberOfMessages")  # visible, or in flight
            queue_outputs.add(str(metric["Dimensions"]))
        assert len(queue_outputs) == 3
        assert all(
            any(queue in dimensions for dimensions in queue_outputs)
            for queue in ("QueuesHighPriorityQueue", "QueuesJobsQueue", "QueuesLowPriorityQueue")
        )
    policies = [
        p
        for p in deployed_env.resources(deployed_env.service, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if "Worker" in str(p["Properties"]["ScalingTargetId"])
    ]
    # Backlog only: no CPU target tracking for an I/O-bound worker; the target tracking is the backlog's.
    assert sorted(p["Properties"]["PolicyType"] for p in policies) == ["StepScaling", "TargetTrackingScaling"]


def test_worker_task_drains_within_stop_timeout_and_can_protect_itself(deployed_env: EnvTemplates) -> None:
    worker = get_config(deployed_env.env_name).worker
    app = _task(deployed_env, "worker")["ContainerDefinitions"][0]
    environment = {e["Name"]: e["Value"] for e in app["Environment"]}
    assert app["StopTimeout"] == worker.stop_timeout_s
    assert int(environment["JOBS_SHUTDOWN_DEADLINE_S"]) < worker.stop_timeout_s
    assert deployed_env.service is not None
    Template.from_json(deployed_env.service).has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Action": "ecs:UpdateTaskProtection", "Effect": "Allow"})]
                )
            }
        },
    )


def test_containers_read_settings_from_ssm_with_tracing_sidecar(deployed_env: EnvTemplates) -> None:
    labels = ["worker", "api"] if get_config(deployed_env.env_name).api.mode == "fargate" else ["worker"]
    for label in labels:
        containers = {c["Name"]: c for c in _task(deployed_env, label)["ContainerDefinitions"]}
        app = containers["app"]
        environment = {e["Name"]: e["Value"] for e in app["Environment"]}
        assert environment["JOBS_SSM_PATH"] == f"/job-tickets/{deployed_env.env_name}"
        assert environment["AWS_REGION"] == get_config(deployed_env.env_name).region
        assert app["ReadonlyRootFilesystem"] is True
        assert app["LogConfiguration"]["LogDriver"] == "awslogs"
        assert set(containers) == {"app", "otel-collector"}
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
        assert "AWS_XRAY_DAEMON_ADDRESS" not in environment


def test_ecs_tasks_send_spans_to_an_adot_collector_sidecar_that_exports_to_x_ray(deployed_env: EnvTemplates) -> None:
    config = get_config(deployed_env.env_name)
    labels = ["worker", "api"] if config.api.mode == "fargate" else ["worker"]
    for label in labels:
        containers = {c["Name"]: c for c in _task(deployed_env, label)["ContainerDefinitions"]}
        app, collector = containers["app"], containers["otel-collector"]
        assert collector["Image"].startswith("public.ecr.aws/aws-observability/aws-otel-collector:v")
        # Best effort and private: the app waits for it to start but survives it; no port leaves the task.
        assert collector["Essential"] is False and collector["ReadonlyRootFilesystem"] is True
        assert "PortMappings" not in collector
        assert {"ContainerName": "otel-collector", "Condition": "START"} in app["DependsOn"]
        assert collector["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == "otel-collector"
        environment = {e["Name"]: e["Value"] for e in collector["Environment"]}
        # The collector reads its configuration as YAML from AOT_CONFIG_CONTENT.
        collector_config = yaml.safe_load(environment["AOT_CONFIG_CONTENT"])
        receiver = collector_config["receivers"]["otlp"]["protocols"]
        assert receiver == {"http": {"endpoint": "127.0.0.1:4318"}}
        app_environment = {e["Name"]: e["Value"] for e in app["Environment"]}
        assert app_environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{receiver['http']['endpoint']}"
        assert collector_config["exporters"] == {
            "awsxray": {"region": config.region, "indexed_attributes": ["jobId", "jobType", "traceId"]}
        }
        assert collector_config["service"]["pipelines"] == {
            "traces": {"receivers": ["otlp"], "processors": ["batch/traces"], "exporters": ["awsxray"]}
        }


def test_log_groups_have_retention(deployed_env: EnvTemplates) -> None:
    assert deployed_env.service is not None
    groups = deployed_env.resources(deployed_env.service, "AWS::Logs::LogGroup")
    assert groups
    days = get_config(deployed_env.env_name).log_retention_days
    assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {days}


def test_images_come_from_the_repo_dockerfile(deployed_env: EnvTemplates) -> None:
    name = f"JobTickets-{deployed_env.env_name}-service"
    images = deployed_env.assets(name)["dockerImages"].values()
    targets = {image["source"]["dockerBuildTarget"] for image in images}
    expected = {"worker", "lambda"} | ({"api"} if get_config(deployed_env.env_name).api.mode == "fargate" else set())
    assert targets == expected
    for image in images:
        staged = deployed_env.synthesized.outdir / image["source"]["directory"]
        assert (staged / "Dockerfile").is_file()
        assert (staged / "runtime" / "settings.py").is_file()
        assert not (staged / ".venv").exists() and not (staged / ".build").exists()


def test_every_image_asset_is_built_for_linux_amd64_from_the_locks(deployed_env: EnvTemplates) -> None:
    # The tasks and functions run on X86_64: an arm64 builder (a laptop) must still push amd64 images.
    name = f"JobTickets-{deployed_env.env_name}-service"
    images = deployed_env.assets(name)["dockerImages"].values()
    assert images
    for image in images:
        assert image["source"].get("platform") == "linux/amd64", image["displayName"]
        staged = deployed_env.synthesized.outdir / image["source"]["directory"]
        assert (staged / "runtime" / "requirements.lock").is_file()
        assert (staged / ".ci" / "requirements-lambda.lock").is_file()


def test_every_stack_targets_the_region_of_its_environment_config(deployed_env: EnvTemplates) -> None:
    from tools.diff_gate.assembly import assembly_region

    region = get_config(deployed_env.env_name).region
    assert assembly_region(deployed_env.synthesized.outdir) == region
    assert {stack.environment.region for stack in deployed_env.synthesized.assembly.stacks} == {region}


def test_dlq_lambda(deployed_env: EnvTemplates) -> None:
    function = _one(
        deployed_env, "AWS::Lambda::Function", lambda p: p["ImageConfig"]["Command"] == ["runtime.dlq_handler.handler"]
    )
    assert function["PackageType"] == "Image"
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Environment"]["Variables"]["JOBS_SSM_PATH"] == f"/job-tickets/{deployed_env.env_name}"
    # No collector beside a Lambda: Lambda's active tracing records the function; the SDK's spans are not exported.
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in function["Environment"]["Variables"]
    mapping = _one(
        deployed_env, "AWS::Lambda::EventSourceMapping", lambda p: "QueuesDeadLetterQueue" in str(p["EventSourceArn"])
    )
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "QueuesDeadLetterQueue" in str(mapping["EventSourceArn"])


def test_api_on_lambda_behind_http_api(dev: EnvTemplates) -> None:
    function = _one(
        dev, "AWS::Lambda::Function", lambda p: p["ImageConfig"]["Command"] == ["runtime.api.lambda_handler.handler"]
    )
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Timeout"] < 30
    _one(dev, "AWS::ApiGatewayV2::Api")
    stage = _one(dev, "AWS::ApiGatewayV2::Stage")
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert "DestinationArn" in stage["AccessLogSettings"]
    assert dev.service is not None
    assert not dev.resources(dev.service, "AWS::ElasticLoadBalancingV2::LoadBalancer")


def test_api_url_is_an_output(deployed_env: EnvTemplates) -> None:
    assert deployed_env.service is not None
    assert "ApiUrl" in deployed_env.service["Outputs"]
