"""queuekit beside PgQueuer, Procrastinate and raw SQL, on PostgreSQL.

Needs the optional ``bench`` extra (``pip install -e '.[bench]'``); without
it this benchmark says so and is skipped. Each system runs through its own
public API (see :mod:`benchmarks._peer_sides`) on a fresh database of its
own, all in the same run. A trial measures every system one after the
other; the order rotates from trial to trial so that none always goes
first, and each figure is the median of the trials. Metrics:

- single enqueue, one job per transaction (jobs/s);
- bulk enqueue of 20,000 jobs in one call (jobs/s);
- end to end: one worker draining 20,000 no-op jobs enqueued beforehand
  (jobs/s);
- pickup p50 / p95 on an idle worker: from the enqueue's commit to the
  task starting (ms).

Every job carries its number and the task counts its runs: a job lost, run
twice or left behind in the tables fails the run.
"""

from __future__ import annotations

import importlib.util
import os
import random
import statistics
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from benchmarks._peer_sides import SIDES, Side
from benchmarks.common import Measurement, fresh_database, percentile, timed

ORDER = 90
DIALECTS = ("postgresql",)
TRIALS = int(os.environ.get("QUEUEKIT_BENCH_PEER_TRIALS", "3"))
SINGLE = int(os.environ.get("QUEUEKIT_BENCH_PEER_SINGLE", "1000"))
BULK = int(os.environ.get("QUEUEKIT_BENCH_PEER_JOBS", "20000"))
PICKUPS = int(os.environ.get("QUEUEKIT_BENCH_PEER_PICKUPS", "200"))
#: Job numbers of the pickup samples start here (the drained backlog is below).
PICKUP_BASE = 10_000_000
WAIT_LIMIT = 10.0

METRICS = (
    ("single enqueue, own transaction", "jobs/s"),
    (f"bulk enqueue of {BULK:,}", "jobs/s"),
    (f"end to end, {BULK:,} no-op jobs", "jobs/s"),
    ("pickup p50, idle worker", "ms"),
    ("pickup p95, idle worker", "ms"),
)
LOWER_IS_BETTER = {"ms"}


def missing_extra() -> str | None:
    """Which peer package is not installed, or None."""
    for package in ("pgqueuer", "procrastinate", "asyncpg"):
        if importlib.util.find_spec(package) is None:
            return package
    return None


class Faults:
    """Jobs lost, run twice or left behind, per system."""

    def __init__(self) -> None:
        self.by_side: dict[str, list[str]] = {}

    def check(self, side: Side, what: str, lost: int, twice: int, left: int) -> None:
        """Note the faults of one phase (nothing when all three are zero)."""
        for count, kind in ((lost, "lost"), (twice, "run twice"), (left, "left behind")):
            if count:
                self.by_side.setdefault(side.name, []).append(f"{what}: {count} {kind}")

    def text(self, name: str) -> str:
        """The faults of one system, or ``0``."""
        return "; ".join(self.by_side.get(name, [])) or "0"


def enqueue_phase(make: Callable[[str], Side], faults: Faults) -> tuple[str, float, float]:
    """Single and bulk enqueue on a fresh database: (name, single jobs/s, bulk jobs/s)."""
    with fresh_database("postgresql", migrate=False) as url:
        side = make(url)
        try:
            for n in range(20):  # warm connections and statement caches
                side.enqueue_one(-1 - n)
            single = SINGLE / timed(lambda: [side.enqueue_one(n) for n in range(SINGLE)])
            bulk = BULK / timed(lambda: side.enqueue_bulk(range(SINGLE, SINGLE + BULK)))
            stored = side.remaining()
            expected = 20 + SINGLE + BULK
            faults.check(side, "enqueue", max(0, expected - stored), max(0, stored - expected), 0)
            return side.name, single, bulk
        finally:
            side.close()


def worker_phase(make: Callable[[str], Side], faults: Faults) -> tuple[float, list[float]]:
    """Drain a backlog, then sample pickups, on a fresh database: (jobs/s, latencies in ms)."""
    with fresh_database("postgresql", migrate=False) as url:
        side = make(url)
        try:
            side.enqueue_bulk(range(BULK))
            throughput = BULK / timed(lambda: side.drain(BULK))
            side.tally.wait_total(BULK, 5.0)  # a worker may report before its last record
            lost, twice = side.tally.problems(range(BULK))
            faults.check(side, "drain", lost, twice, side.remaining())
            latencies: list[float] = []
            side.start_idle()
            try:
                side.enqueue_one(PICKUP_BASE - 1)  # warm the path
                side.tally.wait_started(PICKUP_BASE - 1, WAIT_LIMIT)
                for n in range(PICKUP_BASE, PICKUP_BASE + PICKUPS):
                    side.enqueue_one(n)
                    committed = time.perf_counter()
                    started = side.tally.wait_started(n, WAIT_LIMIT)
                    latencies.append((started - committed) * 1000)
                    time.sleep(random.uniform(0.005, 0.015))
                time.sleep(0.2)  # a second run would show now
            finally:
                side.stop_idle()
            lost, twice = side.tally.problems(range(PICKUP_BASE - 1, PICKUP_BASE + PICKUPS))
            faults.check(side, "pickup", lost, twice, side.remaining())
            return throughput, latencies
        finally:
            side.close()


def render(
    console: Console, medians: dict[str, list[float]], faults: Faults, order: list[str]
) -> None:
    """The table: each figure with its ratio to queuekit and to raw SQL, then as Markdown."""
    table = Table(title=f"peers on postgresql (medians of {TRIALS} trials)")
    table.add_column("metric")
    for name in order:
        table.add_column(name, justify="right")
    markdown = ["| metric | " + " | ".join(order) + " |", "|---|" + "--:|" * len(order)]
    for index, (metric, unit) in enumerate(METRICS):
        cells = []
        for name in order:
            value = medians[name][index]
            text = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
            if name != "raw SQL":
                text += f" ({value / medians['raw SQL'][index]:.2f}x raw"
                if name != "queuekit":
                    text += f", {value / medians['queuekit'][index]:.2f}x qk"
                text += ")"
            cells.append(text)
        table.add_row(f"{metric} ({unit})", *cells)
        markdown.append(f"| {metric} ({unit}) | " + " | ".join(cells) + " |")
    table.add_row("jobs lost / twice / left behind", *(faults.text(n) for n in order))
    markdown.append(
        "| jobs lost / twice / left behind | " + " | ".join(faults.text(n) for n in order) + " |"
    )
    console.print(table)
    print("\n".join(markdown))  # unwrapped, for the README


def run(dialect: str, url: str) -> list[Measurement]:
    """Every system, ``TRIALS`` times in rotating order; queuekit's figures against raw SQL."""
    console = Console(highlight=False)
    missing = missing_extra()
    if missing is not None:
        print(  # plain: rich would take [bench] for markup
            f"peers SKIPPED: {missing} is not installed; "
            "install the extra with `pip install -e '.[bench]'`"
        )
        return []
    figures: dict[str, list[list[float]]] = {}
    faults = Faults()
    for trial in range(TRIALS):
        shift = trial % len(SIDES)
        for make in SIDES[shift:] + SIDES[:shift]:
            name, single, bulk = enqueue_phase(make, faults)
            throughput, latencies = worker_phase(make, faults)
            p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
            row = [single, bulk, throughput, p50, p95]
            figures.setdefault(name, []).append(row)
            console.print(f"trial {trial + 1} {name}: " + ", ".join(f"{v:,.2f}" for v in row))
    medians = {
        name: [statistics.median(column) for column in zip(*rows, strict=True)]
        for name, rows in figures.items()
    }
    order = [side.name for side in SIDES]
    render(console, medians, faults, order)
    if faults.by_side:
        raise RuntimeError(f"jobs lost, run twice or left behind: {faults.by_side}")
    ours, raw = medians["queuekit"], medians["raw SQL"]
    targets = (0.75, 0.30, 0.40, 1.5, None)
    return [
        Measurement(
            f"peers: {metric}",
            ours[index],
            unit,
            "raw SQL, two-column table",
            raw[index],
            lower_is_better=unit in LOWER_IS_BETTER,
            target=targets[index],
            limit=10.0 if index == 4 else None,
        )
        for index, (metric, unit) in enumerate(METRICS)
    ]
