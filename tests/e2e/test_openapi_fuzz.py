"""A bounded schema-driven fuzz of the served OpenAPI document against the local all-in-one: schemathesis builds
requests from the document alone (job bodies from the job types' published params schemas), sends them with the
local key, and checks every answer against the document: no 5xx, documented status codes, content types,
headers and bodies. The stateful part follows the document's links from a submitted job to GET, retry and cancel.
The example counts keep it to about a minute; raise FUZZ_EXAMPLES for a longer hunt."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import CheckFunction
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.e2e.local_system import LocalSystem, running_system

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
STATEFUL_STEPS = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "15"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests each run, so a red run can be reproduced
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def system() -> Iterator[LocalSystem]:
    with running_system() as local:
        yield local


@pytest.fixture(scope="module")
def api_schema(system: LocalSystem) -> OpenApiSchema:
    return schemathesis.openapi.from_url(f"{system.api_url}/openapi.json", config=FUZZ_CONFIG)


@pytest.fixture
def auth(system: LocalSystem) -> dict[str, str]:
    return system.auth_headers


fuzzed = schemathesis.pytest.from_fixture("api_schema")


# Every schemathesis check runs, with these changes (and their reasons):
# - positive data acceptance is off: a schema-valid S3 URI still names some bucket and tenant, and only the
#   deployment's documents bucket under the caller's own tenants/<tenant>/ prefix is accepted (a 422 naming the
#   field otherwise), which a static document cannot express.
# - invalid data may also be refused with 413 (over the documented body limit: the size is checked before the
#   contents) or 415, besides schemathesis's 4xx defaults.
# - "not a server error" is replaced by `only_documented_refusals`: a 503 with Retry-After is the documented answer
#   when the store does not answer within the request's deadline (a loaded machine can cause it); any other 5xx, or
#   a 503 without Retry-After, fails.
FUZZ_CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            "not_a_server_error": {"enabled": False},
            "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "406", "413", "415", "422"]},
        }
    }
)


def only_documented_refusals(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    if response.status_code >= 500:
        retry_after = response.headers.get("retry-after")
        assert response.status_code == 503 and retry_after, (
            f"{case.method} {case.formatted_path} answered {response.status_code} "
            f"(Retry-After: {retry_after}): {response.text[:300]}"
        )
    return True


def excluded_checks(case: schemathesis.Case) -> list[CheckFunction]:
    """Negative data rejection is off for the batch: by the contract one bad job does not fail the others, so a
    batch whose jobs break the item schema is a 200 with a 422 result for each of those jobs (a body whose `jobs`
    is not a list of 1-100 objects is still refused)."""
    if case.operation.path == "/api/v1/jobs/batch":
        return [schemathesis.checks.negative_data_rejection]
    return []


@fuzzed.parametrize()
@FUZZ_SETTINGS
def test_every_operation_answers_as_documented(case: schemathesis.Case, auth: dict[str, str]) -> None:
    case.call_and_validate(
        headers=auth,
        timeout=60,
        additional_checks=[only_documented_refusals],
        excluded_checks=excluded_checks(case),
    )


def test_job_life_through_the_documented_links(api_schema: OpenApiSchema, system: LocalSystem) -> None:
    machine = api_schema.as_state_machine()
    assert machine.bundles, "the document has no links from a submitted job to the operations that follow it"

    class JobLife(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            headers = dict(system.auth_headers)
            if case.headers and "Idempotency-Key" in case.headers:
                # A fresh key per submit: a generated key repeats across examples, and its replay (200), in-flight
                # (409) or reused (422) answer would make the same generated steps reach different states, which
                # Hypothesis refuses as a flaky strategy. Replays are covered by the stateless part and the API tests.
                headers["Idempotency-Key"] = uuid.uuid4().hex
            return {"headers": headers, "timeout": 60}

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                additional_checks=[only_documented_refusals],
                excluded_checks=excluded_checks(case),
                transport_kwargs=kwargs or None,
            )

    JobLife.run(
        settings=settings(
            max_examples=STATEFUL_STEPS,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            # No shrinking: a shrunk replay meets a server that has moved on (jobs finished, canceled), so its
            # steps would not reproduce; the failing steps are printed as they ran.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
