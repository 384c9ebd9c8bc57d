"""Settings from SSM parameters on the moto server, read through the client runtime/aws_clients builds."""

from __future__ import annotations

import pytest

from runtime.observability import aws_calls
from runtime.settings import SettingsError, load_settings
from tests.adapters.resources import raw_client, unique


@pytest.fixture
def ssm_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in (
        "JOBS_TABLE_NAME",
        "JOBS_QUEUE_URL",
        "JOBS_DEAD_LETTER_QUEUE_URL",
        "JOBS_DOCUMENTS_BUCKET",
        "JOBS_WORKER_PLUGINS",
        "JOBS_API_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    path = f"/{unique('settings')}"
    monkeypatch.setenv("JOBS_SSM_PATH", path)
    return path


def test_parameters_under_the_path_fill_the_settings_and_the_environment_wins(
    ssm_env: str, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm = raw_client("ssm", moto_server)
    for name, value in {
        "table-name": "jobs-from-ssm",
        "access-table-name": "access-from-ssm",
        "queue-url": "https://sqs.example/queue",
        "dead-letter-queue-url": "https://sqs.example/dlq",
        "documents-bucket": "docs-from-ssm",
        "worker-plugins": "tests.worker.plugin_jobs, other.module",
        "api-port": "9090",
    }.items():
        ssm.put_parameter(Name=f"{ssm_env}/{name}", Value=value, Type="String")
    monkeypatch.setenv("JOBS_TABLE_NAME", "jobs-from-env")
    aws_calls.reset()

    settings = load_settings()

    assert settings.table_name == "jobs-from-env"
    assert settings.queue_url == "https://sqs.example/queue"
    assert settings.documents_bucket == "docs-from-ssm"
    assert settings.access_table_name == "access-from-ssm"
    assert settings.worker_plugins == ("tests.worker.plugin_jobs", "other.module")
    assert settings.api_port == 9090 and settings.api_host == "127.0.0.1"
    # Built by runtime/aws_clients: the request was counted like every other AWS call.
    assert aws_calls.snapshot()["other"]["ssm.GetParametersByPath"] == 1


def test_an_unreadable_path_is_a_settings_error_naming_it(ssm_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(SettingsError, match=f"cannot read ssm parameters under '{ssm_env}/'"):
        load_settings()
