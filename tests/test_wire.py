"""Reading numbers back from the wire form (pure logic): wrong types and out-of-range values read as absent."""

from __future__ import annotations

import json

import pytest

from connection_pools.core import wire


@pytest.mark.parametrize("value", [10**400, -(10**400), float("inf"), float("nan"), True, "3", None, [1]])
def test_a_value_that_is_not_a_finite_number_reads_as_absent(value: object) -> None:
    assert wire.number(value) is None
    assert wire.whole(value) is None
    assert (wire.count(value), wire.seconds(value)) == (0, 0.0)


def test_finite_numbers_read_as_themselves() -> None:
    assert (wire.number(3), wire.number(2.5), wire.whole(7.9), wire.count(4), wire.seconds(0.25)) == (
        3.0, 2.5, 7, 4, 0.25)
    assert wire.number(10**300) == 1e300  # large but within a float's range


def test_a_huge_integer_in_json_is_refused_not_a_crash() -> None:
    # json.loads turns a long digit string into an int that float() cannot hold.
    values = json.loads('{"clients": 1' + "0" * 400 + ', "servers": 2}')
    assert (wire.count(values["clients"]), wire.count(values["servers"])) == (0, 2)
