"""The chaos suite's fault proxy answers as AWS would: the SDK reads the injected errors' codes from DynamoDB's
JSON, SQS's JSON and SQS's query (XML) protocol and retries them as server errors or throttles; latency spikes
and other services pass through to the emulator."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from benchmarks.chaos_proxy import FaultProxy, FaultRates, operation_of, service_of

SERVER_ERRORS = {"InternalServerError", "InternalError", "ServiceUnavailable"}


@pytest.fixture
def make_proxy(moto_server: str) -> Iterator[Callable[[FaultRates], FaultProxy]]:
    started: list[FaultProxy] = []

    def make(rates: FaultRates) -> FaultProxy:
        proxy = FaultProxy(moto_server, {"dynamodb": rates, "sqs": rates}, seed=1).start()
        proxy.enabled.set()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


def aws(service: str, url: str, attempts: int = 1) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    return boto3.session.Session(region_name="us-east-1").client(service, endpoint_url=url, config=config)


def test_server_errors_are_aws_errors_the_sdk_retries(make_proxy: Callable[[FaultRates], FaultProxy]) -> None:
    proxy = make_proxy(FaultRates(error=1.0))
    with pytest.raises(ClientError) as dynamodb_error:
        aws("dynamodb", proxy.url, attempts=3).list_tables()
    assert dynamodb_error.value.response["Error"]["Code"] in SERVER_ERRORS
    assert dynamodb_error.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
    assert proxy.counts["dynamodb requests"] == 3  # the SDK retried: it took them for server errors
    with pytest.raises(ClientError) as sqs_error:
        aws("sqs", proxy.url).list_queues()
    assert sqs_error.value.response["Error"]["Code"] in SERVER_ERRORS
    assert proxy.refused == {"dynamodb ListTables": 3, "sqs ListQueues": 1}


def test_throttles_carry_the_services_throttling_codes(make_proxy: Callable[[FaultRates], FaultProxy]) -> None:
    proxy = make_proxy(FaultRates(throttle=1.0))
    codes = set()
    for _ in range(12):
        with pytest.raises(ClientError) as error:
            aws("dynamodb", proxy.url).list_tables()
        codes.add(error.value.response["Error"]["Code"])
    assert codes == {"ThrottlingException", "ProvisionedThroughputExceededException"}
    with pytest.raises(ClientError) as sqs_error:
        aws("sqs", proxy.url).list_queues()
    assert sqs_error.value.response["Error"]["Code"] == "RequestThrottled"
    assert proxy.counts["sqs throttle"] == 1


def test_sqs_query_protocol_gets_an_xml_error(make_proxy: Callable[[FaultRates], FaultProxy]) -> None:
    proxy = make_proxy(FaultRates(throttle=1.0))
    scope = "Credential=testing/20260101/us-east-1/sqs/aws4_request"
    request = urllib.request.Request(
        proxy.url,
        data=b"Action=ListQueues&Version=2012-11-05",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"AWS4-HMAC-SHA256 {scope}"},
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    body = error.value.read().decode()
    assert error.value.code == 400 and error.value.headers["Content-Type"] == "text/xml"
    assert "<Code>RequestThrottled</Code>" in body and "<Type>Sender</Type>" in body
    assert proxy.refused == {"sqs ListQueues": 1}  # the operation read from the query's Action


def test_latency_spikes_and_other_services_pass_through(make_proxy: Callable[[FaultRates], FaultProxy]) -> None:
    proxy = make_proxy(FaultRates(latency=1.0, latency_s=0.3))
    began = time.monotonic()
    aws("dynamodb", proxy.url).list_tables()
    assert time.monotonic() - began >= 0.3
    assert proxy.counts["dynamodb latency"] == 1
    failing = make_proxy(FaultRates(error=1.0))
    bucket = f"chaos-proxy-{uuid.uuid4().hex[:8]}"
    aws("s3", failing.url).create_bucket(Bucket=bucket)  # S3 is never faulted
    assert failing.counts["s3 requests"] == 1


def test_service_is_read_from_target_or_credential_scope() -> None:
    assert service_of({"X-Amz-Target": "DynamoDB_20120810.PutItem"}) == "dynamodb"
    assert service_of({"X-Amz-Target": "AmazonSQS.SendMessage"}) == "sqs"
    assert service_of({"Authorization": "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/s3/aws4_request"}) == "s3"
    assert service_of({}) is None


def test_operation_is_read_from_target_or_query_action() -> None:
    assert operation_of({"X-Amz-Target": "AmazonSQS.SendMessageBatch"}, b"{}") == "SendMessageBatch"
    assert operation_of({}, b"Action=ReceiveMessage&Version=2012-11-05") == "ReceiveMessage"
    assert operation_of({}, b"") == ""


def test_rates_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match=r"error rate must be within 0-1, got 1\.5"):
        FaultRates(error=1.5)
    with pytest.raises(ValueError, match="exceed 1"):
        FaultRates(error=0.6, throttle=0.6)
