"""Time-ordered job ids (UUIDv7), without a database."""

from __future__ import annotations

import os
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


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    uuid7()  # the parent holds unread random bytes now
    time.sleep(0.002)  # both next ids start a new millisecond: same reads without the reset
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writing, uuid7().bytes)
        os._exit(0)
    os.close(writing)
    from_child = uuid.UUID(bytes=os.read(reading, 16))
    os.close(reading)
    os.waitpid(child, 0)
    mine = uuid7()
    # The low 62 bits are random: equal ones would mean the child reused our buffer.
    assert from_child.int & ((1 << 62) - 1) != mine.int & ((1 << 62) - 1)
