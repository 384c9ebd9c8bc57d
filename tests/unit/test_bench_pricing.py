"""The benchmark's DynamoDB item-size, write-unit and dollar arithmetic against hand-computed values."""

from __future__ import annotations

import pytest

from benchmarks.bench_pricing import (
    Gsi,
    JobItemStates,
    PriceTable,
    item_size,
    number_size,
    price_per_job,
    read_units,
    value_size,
    write_cost,
    write_units,
)
from benchmarks.bench_stats import percentile
from runtime.adapters.dynamodb.schema import INDEXES, PENDING_INDEX, TABLE_KEY, Attr

TABLE_KEYS = (TABLE_KEY.name,)
GSIS = tuple(
    Gsi(index.name, tuple(key.name for key in index.key_attributes), index.projection.value, index.non_key_attributes)
    for index in INDEXES
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 1), ("7", 2), ("12", 2), ("123", 3), ("1700000000000", 2), ("1731234567891", 8), ("-0.0050", 2)],
)
def test_number_size_counts_significant_digits(text: str, expected: int) -> None:
    assert number_size(text) == expected


def test_value_sizes_follow_the_documented_rules() -> None:
    assert value_size({"S": "héllo"}) == 6  # UTF-8 bytes
    assert value_size({"BOOL": True}) == 1
    assert value_size({"NULL": True}) == 1
    assert value_size({"B": b"\x00\x01\x02"}) == 3
    assert value_size({"L": []}) == 3
    # map: 3 + per element (1 + name + value): 3 + (1 + 1 + 1) + (1 + 2 + 2)
    assert value_size({"M": {"a": {"S": "x"}, "bb": {"N": "12"}}}) == 11
    assert value_size({"L": [{"S": "ab"}, {"N": "5"}]}) == 3 + (1 + 2) + (1 + 2)


def test_item_size_sums_names_and_values() -> None:
    item = {"jobId": {"S": "a" * 36}, "attempts": {"N": "1"}}
    assert item_size(item) == 5 + 36 + 8 + 2


def test_units_round_up_per_started_kilobyte() -> None:
    assert write_units(0) == 1
    assert write_units(1024) == 1
    assert write_units(1025) == 2
    assert read_units(4096, consistent=True) == 1.0
    assert read_units(4097, consistent=True) == 2.0
    assert read_units(100, consistent=False) == 0.5


def _pending() -> dict[str, dict[str, object]]:
    return {
        Attr.JOB_ID: {"S": "j" * 36},
        Attr.STATUS: {"S": "PENDING"},
        Attr.TRACE_ID: {"S": "t" * 32},
        Attr.PENDING_SHARD: {"S": "7"},
        Attr.PENDING_SINCE: {"N": "1731234567891"},
    }


def test_put_writes_the_table_and_each_index_the_item_enters() -> None:
    cost = write_cost(None, _pending(), table_keys=TABLE_KEYS, gsis=GSIS)
    assert cost.table_units == 1
    assert cost.index_units == {PENDING_INDEX.name: 1}  # no idempotencyKey: the sparse key index is not written
    assert cost.total == 2


def test_update_that_removes_the_index_key_deletes_the_index_entry() -> None:
    before = _pending()
    after = {k: v for k, v in before.items() if k not in (Attr.PENDING_SHARD, Attr.PENDING_SINCE)} | {
        Attr.STATUS: {"S": "PROCESSING"}
    }
    assert write_cost(before, after, table_keys=TABLE_KEYS, gsis=GSIS).index_units == {PENDING_INDEX.name: 1}


def test_update_of_an_index_key_value_is_a_delete_and_a_put() -> None:
    before = _pending()
    after = before | {Attr.PENDING_SINCE: {"N": "1731234599999"}}
    assert write_cost(before, after, table_keys=TABLE_KEYS, gsis=GSIS).index_units == {PENDING_INDEX.name: 2}


def test_update_touching_no_projected_attribute_writes_no_index() -> None:
    before = _pending()
    after = before | {"status": {"S": "PENDING"}, "attempts": {"N": "0"}}
    assert write_cost(before, after, table_keys=TABLE_KEYS, gsis=GSIS).index_units == {}


def test_update_is_billed_on_the_larger_item_and_transactions_double() -> None:
    small = {"jobId": {"S": "x"}}
    large = small | {"result": {"S": "r" * 1100}}
    assert write_cost(large, small, table_keys=TABLE_KEYS, gsis=()).table_units == 2
    assert write_cost(None, small, table_keys=TABLE_KEYS, gsis=GSIS, transactional=True).total == 2


def test_dollars_per_million_jobs_for_the_design_floor() -> None:
    pending = _pending()
    processing = {k: v for k, v in pending.items() if k not in (Attr.PENDING_SHARD, Attr.PENDING_SINCE)}
    final = processing | {"status": {"S": "SUCCEEDED"}}
    calls = {
        "submit": {"dynamodb.PutItem": 1.0, "sqs.SendMessage": 1.0},
        "worker": {"dynamodb.UpdateItem": 2.0, "sqs.ReceiveMessage": 0.1, "sqs.DeleteMessageBatch": 0.1},
    }
    lines = price_per_job(
        calls,
        states=JobItemStates(pending, processing, final),
        table_keys=TABLE_KEYS,
        gsis=GSIS,
        log_bytes_per_job=1024,
        prices=PriceTable(),
    )
    by_what = {line.what: line for line in lines}
    assert by_what["submit PutItem"].quantity_per_job == 2  # table + pending-by-age
    assert by_what["worker UpdateItem"].quantity_per_job == 3  # claim 1 + index delete 1, completion 1
    # The lazy claim: a quick job's one completion from PENDING also leaves pending-by-age (1 + 1); half the jobs
    # claimed (1.5 updates per job) average the two.
    for updates, units in ((1.0, 2), (1.5, 2.5)):
        lazy = price_per_job(
            {"worker": {"dynamodb.UpdateItem": updates}},
            states=JobItemStates(pending, processing, final),
            table_keys=TABLE_KEYS,
            gsis=GSIS,
            log_bytes_per_job=0,
            prices=PriceTable(),
        )
        assert {line.what: line for line in lazy}["worker UpdateItem"].quantity_per_job == units
    # The lazy claim's read: one BatchGetItem per receive of up to ten jobs, billed per item (the PENDING one,
    # consistent: 1 RRU per started 4 KB); fewer requests than one per ten jobs read fewer jobs.
    for requests, rru in ((0.14, 1.0), (0.1, 1.0), (0.05, 0.5)):
        read = price_per_job(
            {"worker": {"dynamodb.BatchGetItem": requests}, "background": {"dynamodb.BatchGetItem": requests}},
            states=JobItemStates(pending | {"params": {"S": "p" * 5000}}, processing, final),
            table_keys=TABLE_KEYS,
            gsis=GSIS,
            log_bytes_per_job=0,
            prices=PriceTable(),
        )
        by_read = {line.what: line for line in read}
        assert by_read["worker BatchGetItem"].quantity_per_job == pytest.approx(rru * 2)  # a 5 KB item: 2 RRU
        assert by_read["background BatchGetItem"].quantity_per_job == pytest.approx(requests)  # one item each
    wru = 5 * 0.625
    sqs = 1.2 * 0.40
    logs = 1024 / 1024**3 * 0.50 * 1e6
    total = sum(line.dollars_per_million_jobs for line in lines)
    assert total == pytest.approx(wru + sqs + logs)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 501))
    assert percentile(values, 0.5) == 250
    assert percentile(values, 0.99) == 495
    assert percentile(values, 1.0) == 500
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
