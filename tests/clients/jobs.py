"""Job bodies the client tests submit to the local all-in-one: real work of the built-in types."""

from __future__ import annotations

from typing import Any

from tests.e2e.local_system import LocalSystem


def transform_params(*names: str) -> dict[str, Any]:
    return {
        "records": [{"name": f" {name} "} for name in names],
        "operations": [{"op": "strip", "fields": ["name"]}, {"op": "uppercase", "fields": ["name"]}],
    }


def missing_document_params(system: LocalSystem, name: str) -> dict[str, str]:
    """process_document on a source that does not exist: a permanent failure, FAILED_FINAL at once."""
    return {
        "source": f"s3://{system.bucket}/tenants/local/in/missing-{name}.txt",
        "destination": f"s3://{system.bucket}/tenants/local/out/missing-{name}.json",
    }


def report_params(system: LocalSystem, name: str) -> dict[str, Any]:
    """generate_report over a few rows: it reports progress while aggregating and "report written" at the end."""
    return {
        "title": f"sales {name}",
        "rows": [{"region": region, "amount": amount} for region, amount in (("north", 3), ("south", 5), ("north", 4))],
        "group_by": "region",
        "metric": "amount",
        "destination": f"s3://{system.bucket}/tenants/local/reports/{name}.json",
    }
