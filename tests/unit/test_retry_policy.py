"""The retry backoff formula, computed without a database."""

from __future__ import annotations

import random
from typing import Any

import pytest

from queuekit import RetryPolicy
from queuekit.errors import InvalidArgumentError


class FixedDraw(random.Random):
    """A random source whose every draw is ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_delay_grows_by_the_multiplier_until_max_delay() -> None:
    policy = RetryPolicy(base_delay="10 seconds", multiplier=3.0, max_delay="1 hour", jitter=0)
    delays = [policy.delay_ms(attempt) for attempt in range(1, 7)]
    assert delays == [30_000, 90_000, 270_000, 810_000, 2_430_000, 3_600_000]


def test_delay_is_never_below_base_delay() -> None:
    policy = RetryPolicy(base_delay="5 seconds", multiplier=1.0, max_delay="1 minute", jitter=0)
    assert [policy.delay_ms(a) for a in (0, 1, 10)] == [5000, 5000, 5000]


def test_exponent_cap_stops_the_growth() -> None:
    policy = RetryPolicy(
        base_delay="1 second", multiplier=2.0, max_delay="100 days", jitter=0, exponent_cap=3
    )
    assert [policy.delay_ms(a) for a in (2, 3, 4, 50)] == [4000, 8000, 8000, 8000]


def test_jitter_adds_up_to_its_share_and_never_passes_max_delay() -> None:
    policy = RetryPolicy(base_delay="1 second", multiplier=2.0, max_delay="1 hour", jitter=0.5)
    assert policy.delay_ms(1, rng=FixedDraw(0.0)) == 2000
    assert policy.delay_ms(1, rng=FixedDraw(0.5)) == 2500
    assert policy.delay_ms(1, rng=FixedDraw(0.999)) == 2999
    capped = RetryPolicy(base_delay="1 second", multiplier=10.0, max_delay="5 seconds", jitter=1)
    assert {capped.delay_ms(a, rng=FixedDraw(0.99)) for a in (1, 2, 3)} == {5000}


def test_defaults_double_from_one_second_and_stop_growing_at_the_tenth_attempt() -> None:
    policy = RetryPolicy()
    assert policy.delay_ms(1, rng=FixedDraw(0.0)) == 2000
    assert policy.delay_ms(10, rng=FixedDraw(0.0)) == 1_024_000
    assert policy.delay_ms(30, rng=FixedDraw(0.0)) == 1_024_000
    assert policy.delay_ms(30, rng=FixedDraw(0.5)) == 1_075_200  # 10 % jitter, half drawn


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_delay": "1 hour", "max_delay": "1 minute"}, "max_delay must not be shorter"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"multiplier": "2"}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"exponent_cap": -1}, "exponent_cap"),
        ({"exponent_cap": 2.5}, "exponent_cap"),
        ({"base_delay": "soon"}, "base_delay"),
    ],
)
def test_bad_policies_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        RetryPolicy(**options)
