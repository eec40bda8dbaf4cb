"""Time-ordered job ids (UUIDv7), without a database."""

from __future__ import annotations

import time
import uuid

from queuekit.ids import uuid7


def test_ids_are_version_7_rfc_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_ids_carry_the_unix_milliseconds_they_were_made_at() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    # The counter may push an id one millisecond ahead when it overflows.
    assert before <= value.int >> 80 <= after + 1


def test_ids_made_in_a_row_are_strictly_increasing_and_distinct() -> None:
    made = [uuid7() for _ in range(20_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert [str(v) for v in made] == sorted(str(v) for v in made)
