"""Issue 11, defect 10: monitoring that sees an outage. Alarms on stuck dead letters, FAILED_FINAL jobs, the
ALB's targets, missing worker tasks, DynamoDB and Lambda throttles; the worker's container health check; the DLQ
handler's bounded concurrency; scaling on the backlog per running task, at one-minute resolution."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

from runtime.adapters.dynamodb.schema import INDEXES
from runtime.observability.names import JOB_TYPE_DIMENSION, METRICS_NAMESPACE, SERVICE_DIMENSION, Metric
from runtime.worker.liveness import DEFAULT_FILE
from stacks.components.monitoring import TABLE_OPERATIONS
from stacks.components.worker_service import BURST_FACTOR
from stacks.config import get_config
from tests.infra.conftest import EnvTemplates

DLQ = "QueuesDeadLetterQueue82AA3FB7"
TABLE = "JobStoreTableF88185D4"


def _alarms(env: EnvTemplates) -> dict[str, dict[str, Any]]:
    assert env.service is not None
    return {
        re.sub(r"[0-9A-F]{8}$", "", k).removeprefix("Monitoring"): v["Properties"]
        for k, v in env.resources(env.service, "AWS::CloudWatch::Alarm").items()
        if k.startswith("Monitoring")
    }


def _metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The alarm's metrics (MetricStat's Metric or the plain form), whichever it uses."""
    if "MetricName" in alarm:
        return [{k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions") if k in alarm}]
    return [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]


def _dimension_names(metric: dict[str, Any]) -> set[str]:
    return {d["Name"] for d in metric.get("Dimensions", [])}


def _stateful_ref(env: EnvTemplates, value: Any) -> Any:
    """What a service stack value refers to in the stateful stack (CDK's weak cross-stack references)."""
    if isinstance(value, dict) and "Fn::GetStackOutput" in value:
        return env.stateful["Outputs"][value["Fn::GetStackOutput"]["OutputName"]]["Value"]
    return value


def test_a_stuck_dead_letter_raises_an_alarm(deployed_env: EnvTemplates) -> None:
    alarm = _alarms(deployed_env)["DeadLetterQueueStuck"]
    [metric] = _metrics(alarm)
    assert metric["MetricName"] == "ApproximateAgeOfOldestMessage"
    [dimension] = metric["Dimensions"]
    assert _stateful_ref(deployed_env, dimension["Value"]) == {"Fn::GetAtt": [DLQ, "QueueName"]}
    assert alarm["Threshold"] == get_config(deployed_env.env_name).alarms.dlq_oldest_message_age_s
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_failed_final_jobs_of_every_type_raise_an_alarm(deployed_env: EnvTemplates) -> None:
    alarm = _alarms(deployed_env)["JobsFailedFinal"]
    [query] = alarm["Metrics"]
    # A Metrics Insights query: the emitted metric's name and dimension set, this environment's Service.
    assert query["Expression"] == (
        f"SELECT SUM({Metric.JOBS_FAILED_FINAL.value}) "
        f'FROM SCHEMA("{METRICS_NAMESPACE}", {JOB_TYPE_DIMENSION}, {SERVICE_DIMENSION}) '
        f"WHERE {SERVICE_DIMENSION} = 'job-tickets-{deployed_env.env_name}'"
    )
    assert query["Period"] == 300 and query["ReturnData"] is True
    assert alarm["Threshold"] == get_config(deployed_env.env_name).alarms.jobs_failed_final_per_5min


def test_the_emitted_failed_final_metric_has_the_queried_dimensions() -> None:
    # The worker and the DLQ handler emit JobsFailedFinal with JobType beside Service: the schema queried above.
    from runtime.observability import metrics

    record = metrics.emf_record({Metric.JOBS_FAILED_FINAL: (1.0, "Count")}, dimensions={JOB_TYPE_DIMENSION: "x"})
    [definition] = record["_aws"]["CloudWatchMetrics"]  # type: ignore[index]
    assert sorted(definition["Dimensions"][0]) == sorted([JOB_TYPE_DIMENSION, SERVICE_DIMENSION])


def test_missing_worker_tasks_raise_an_alarm(deployed_env: EnvTemplates) -> None:
    alarm = _alarms(deployed_env)["WorkerTasksBelowMinimum"]
    [metric] = _metrics(alarm)
    assert (metric["Namespace"], metric["MetricName"]) == ("ECS/ContainerInsights", "RunningTaskCount")
    assert _dimension_names(metric) == {"ClusterName", "ServiceName"}
    assert "WorkerService" in json.dumps(metric["Dimensions"])
    assert alarm["Threshold"] == get_config(deployed_env.env_name).worker.min_capacity
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    # No datapoint is no task at all: breaching, not "all is well".
    assert alarm["TreatMissingData"] == "breaching" and alarm["EvaluationPeriods"] == 5


def test_the_load_balancers_targets_are_watched_when_the_api_runs_on_fargate(deployed_env: EnvTemplates) -> None:
    alarms = _alarms(deployed_env)
    thresholds = get_config(deployed_env.env_name).alarms
    if get_config(deployed_env.env_name).api.mode == "lambda":
        assert "ApiUnhealthyHosts" not in alarms and "ApiSlow" not in alarms
        assert _metrics(alarms["ApiFunctionThrottled"])[0]["MetricName"] == "Throttles"
        return
    unhealthy = alarms["ApiUnhealthyHosts"]
    [metric] = _metrics(unhealthy)
    assert metric["MetricName"] == "UnHealthyHostCount"
    assert _dimension_names(metric) == {"LoadBalancer", "TargetGroup"}
    assert unhealthy["Threshold"] == thresholds.alb_unhealthy_hosts and unhealthy["EvaluationPeriods"] == 3
    slow = alarms["ApiSlow"]
    [metric] = _metrics(slow)
    assert metric["MetricName"] == "TargetResponseTime"
    assert slow["ExtendedStatistic"] == "p90"
    assert slow["Threshold"] == thresholds.api_p90_latency_s


def test_throttles_of_the_jobs_table_its_indexes_and_the_functions_raise_alarms(deployed_env: EnvTemplates) -> None:
    alarms = _alarms(deployed_env)
    threshold = get_config(deployed_env.env_name).alarms.dynamodb_throttles_per_5min
    table = alarms["JobsTableThrottled"]
    assert {m["MetricName"] for m in _metrics(table)} == {"ThrottledRequests"}
    operations = {d["Value"] for m in _metrics(table) for d in m["Dimensions"] if d["Name"] == "Operation"}
    assert operations == {"GetItem", "PutItem", "UpdateItem", "Query", "BatchGetItem"}
    assert len(TABLE_OPERATIONS) == len(operations)
    assert table["Threshold"] == threshold
    for gsi in INDEXES:
        alarm = alarms[f"JobsIndexThrottled-{gsi.name}".replace("-", "")]
        metrics = _metrics(alarm)
        assert {m["MetricName"] for m in metrics} == {"ReadThrottleEvents", "WriteThrottleEvents"}
        for metric in metrics:
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert dimensions["GlobalSecondaryIndexName"] == gsi.name
            assert _stateful_ref(deployed_env, dimensions["TableName"]) == {"Ref": TABLE}
        assert alarm["Threshold"] == threshold
    dlq_handler = alarms["DlqHandlerThrottled"]
    assert _metrics(dlq_handler)[0]["MetricName"] == "Throttles"
    assert dlq_handler["Threshold"] == get_config(deployed_env.env_name).alarms.lambda_throttles_per_5min


def _worker_task(env: EnvTemplates) -> dict[str, Any]:
    assert env.service is not None
    [task] = [
        r["Properties"]
        for r in env.resources(env.service, "AWS::ECS::TaskDefinition").values()
        if r["Properties"]["ContainerDefinitions"][0].get("DockerLabels", {}).get("service") == "worker"
    ]
    return task


def test_the_worker_container_health_check_runs_the_liveness_command(deployed_env: EnvTemplates) -> None:
    task = _worker_task(deployed_env)
    app = task["ContainerDefinitions"][0]
    assert app["HealthCheck"]["Command"] == ["CMD", "python", "-m", "runtime.worker.healthcheck"]
    assert app["HealthCheck"]["Retries"] >= 2 and app["HealthCheck"]["StartPeriod"] > 0
    # Read-only root, and a writable task volume where the liveness file lives.
    assert app["ReadonlyRootFilesystem"] is True
    [mount] = app["MountPoints"]
    assert mount["ReadOnly"] is False
    assert PurePosixPath(DEFAULT_FILE).parent == PurePosixPath(mount["ContainerPath"])
    assert {"Name": mount["SourceVolume"]} in task["Volumes"]
    # An unhealthy task fails the deployment: the circuit breaker rolls it back.
    assert deployed_env.service is not None
    [service] = [
        r["Properties"]
        for k, r in deployed_env.resources(deployed_env.service, "AWS::ECS::Service").items()
        if k.startswith("WorkerService")
    ]
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}


def test_the_dlq_handler_has_bounded_concurrency(deployed_env: EnvTemplates) -> None:
    assert deployed_env.service is not None
    concurrency = get_config(deployed_env.env_name).dlq_handler_concurrency
    [function] = [
        r["Properties"]
        for k, r in deployed_env.resources(deployed_env.service, "AWS::Lambda::Function").items()
        if k.startswith("DlqHandler")
    ]
    assert function["ReservedConcurrentExecutions"] == concurrency
    [mapping] = [
        r["Properties"]
        for r in deployed_env.resources(deployed_env.service, "AWS::Lambda::EventSourceMapping").values()
        if "DlqHandler" in json.dumps(r["Properties"]["FunctionName"])
    ]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": concurrency}
    assert 2 <= concurrency <= function["ReservedConcurrentExecutions"]


def _worker_policies(env: EnvTemplates) -> dict[str, dict[str, Any]]:
    assert env.service is not None
    return {
        k: r["Properties"]
        for k, r in env.resources(env.service, "AWS::ApplicationAutoScaling::ScalingPolicy").items()
        if k.startswith("Worker")
    }


def test_the_worker_tracks_its_backlog_per_running_task(deployed_env: EnvTemplates) -> None:
    worker = get_config(deployed_env.env_name).worker
    [tracking] = [p for p in _worker_policies(deployed_env).values() if p["PolicyType"] == "TargetTrackingScaling"]
    configuration = tracking["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["TargetValue"] == worker.backlog_per_task
    queries = configuration["CustomizedMetricSpecification"]["Metrics"]
    [expression] = [q for q in queries if q.get("ReturnData")]
    stats = {q["Id"]: q["MetricStat"] for q in queries if "MetricStat" in q}
    names = sorted(s["Metric"]["MetricName"] for s in stats.values())
    # Waiting and in flight in each of the three priority queues, per running task.
    visible, in_flight = "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"
    assert names == sorted([visible] * 3 + [in_flight] * 3 + ["RunningTaskCount"])
    assert set(re.findall(r"\b[a-z]+[0-9]*\b", expression["Expression"])) == set(stats)
    assert re.search(r"\) / IF\(FILL\(tasks, 1\) > 0", expression["Expression"])
    queue_names = {
        json.dumps(_stateful_ref(deployed_env, s["Metric"]["Dimensions"][0]["Value"]))
        for s in stats.values()
        if s["Metric"]["Namespace"] == "AWS/SQS"
    }
    assert len(queue_names) == 3 and all("Queue" in name for name in queue_names)


def test_a_burst_adds_tasks_on_one_datapoint_of_one_minute(deployed_env: EnvTemplates) -> None:
    assert deployed_env.service is not None
    worker = get_config(deployed_env.env_name).worker
    steps = [p for p in _worker_policies(deployed_env).values() if p["PolicyType"] == "StepScaling"]
    # Only a scale-out step policy: scaling in is target tracking's.
    [step] = steps
    assert all(a["ScalingAdjustment"] > 0 for a in step["StepScalingPolicyConfiguration"]["StepAdjustments"])
    [alarm] = [
        r["Properties"]
        for k, r in deployed_env.resources(deployed_env.service, "AWS::CloudWatch::Alarm").items()
        if k.startswith("WorkerService") and "QueueMessagesVisibleScaling" in k
    ]
    assert alarm["Threshold"] == worker.backlog_per_task * BURST_FACTOR
    assert alarm["EvaluationPeriods"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    periods = {m.get("Period") or m.get("MetricStat", {}).get("Period") for m in alarm["Metrics"]} - {None}
    assert periods == {60}
