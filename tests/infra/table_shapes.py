"""The jobs table's key and indexes of runtime/adapters/dynamodb/schema.py in the shapes CloudFormation and
DescribeTable use, for tests that check what a template or a deployed table holds."""

from __future__ import annotations

from typing import Any

from runtime.adapters.dynamodb.schema import INDEXES, TABLE_KEY, IndexDefinition, KeyAttribute

KEY_TYPES = ("HASH", "RANGE")


def key_schema(keys: tuple[KeyAttribute, ...]) -> list[dict[str, str]]:
    return [{"AttributeName": key.name, "KeyType": key_type} for key, key_type in zip(keys, KEY_TYPES, strict=False)]


def projection(index: IndexDefinition) -> dict[str, Any]:
    shape: dict[str, Any] = {"ProjectionType": index.projection.value}
    if index.non_key_attributes:
        shape["NonKeyAttributes"] = list(index.non_key_attributes)
    return shape


def global_secondary_indexes() -> list[dict[str, Any]]:
    return [
        {"IndexName": index.name, "KeySchema": key_schema(index.key_attributes), "Projection": projection(index)}
        for index in INDEXES
    ]


def attribute_definitions() -> list[dict[str, str]]:
    keys = dict.fromkeys([TABLE_KEY, *(key for index in INDEXES for key in index.key_attributes)])
    return [{"AttributeName": key.name, "AttributeType": key.type.value} for key in keys]


TABLE_KEY_SCHEMA = key_schema((TABLE_KEY,))
