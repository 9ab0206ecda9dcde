"""Reconnect backoff: capped, exponential, and spread so a fleet does not return in lock-step."""

from __future__ import annotations

import random
import statistics

from receivers.transport import backoff_delay


def test_capped_and_growing() -> None:
    rng = random.Random(1)
    for attempt in range(40):
        d = backoff_delay(attempt, 1.0, 60.0, rng)
        assert 0 <= d <= min(60.0, 2 ** attempt)
    means = [statistics.mean(backoff_delay(a, 1.0, 60.0, rng) for _ in range(2000)) for a in (0, 3, 10)]
    assert means[0] < means[1] < means[2] <= 31


def test_a_thousand_receivers_spread_their_first_retry() -> None:
    rng = random.Random(7)
    first = [backoff_delay(0, 1.0, 60.0, rng) for _ in range(1000)]
    # Bucketed by 100 ms, no slice of the first second holds more than a fifth of the fleet.
    buckets = [0] * 10
    for d in first:
        buckets[min(9, int(d * 10))] += 1
    assert max(buckets) < 200 and statistics.pstdev(first) > 0.25
