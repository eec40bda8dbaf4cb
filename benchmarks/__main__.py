"""Run the benchmarks: ``python -m benchmarks [NAME...] [--dialect D]...``.

A benchmark is any module of this package (other than ``common`` and
private modules) with a function ``run(dialect: str, url: str) ->
list[Measurement]``; an optional module constant ``ORDER`` sorts them, and an
optional ``DIALECTS`` tuple limits the dialects a module runs on.
Each call gets a fresh database migrated to head, dropped afterwards.
Results print per dialect as they come, then as one summary table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from types import ModuleType

from rich.console import Console
from rich.table import Table

import benchmarks
from benchmarks.common import DIALECTS, Measurement, fresh_database, server_problem

Benchmark = Callable[[str, str], list[Measurement]]
NOT_BENCHMARKS = {"common"}


def discover() -> dict[str, ModuleType]:
    """Every benchmark module by name, in ``ORDER`` then name order."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if info.name.startswith("_") or info.name in NOT_BENCHMARKS:
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        if callable(getattr(module, "run", None)):
            found[info.name] = module
    ordered = sorted(found.items(), key=lambda item: (getattr(item[1], "ORDER", 100), item[0]))
    return dict(ordered)


def format_value(value: float, unit: str) -> str:
    """A figure with a precision that suits its size."""
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def results_table(title: str, rows: list[tuple[str, Measurement]]) -> Table:
    """Measurements with their baselines, ratios and targets."""
    table = Table(title=title)
    for column in ("dialect", "benchmark", "queuekit", "baseline", "raw SQL", "ratio", "target"):
        table.add_column(column, justify="right" if column in {"queuekit", "raw SQL"} else "left")
    for dialect, m in rows:
        verdict = m.verdict
        target = f"{m.target_text()} ({verdict})" if verdict else ""
        table.add_row(
            dialect,
            m.name,
            format_value(m.value, m.unit),
            m.baseline_name,
            format_value(m.baseline_value, m.unit),
            f"{m.ratio:.2f}",
            target,
        )
    return table


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the selected benchmarks on the selected dialects, print results."""
    modules = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(modules)}")
    parser.add_argument("--dialect", action="append", choices=DIALECTS, help="repeatable")
    parser.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in modules]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(modules)}")
    selected = {name: modules[name] for name in (args.names or modules)}
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    everything: list[tuple[str, Measurement]] = []
    started = time.perf_counter()
    for dialect in args.dialect or DIALECTS:
        problem = server_problem(dialect)
        if problem is not None:
            console.print(f"[bold red]SKIPPING {dialect.upper()}[/]: {problem}")
            continue
        for name, module in selected.items():
            if dialect not in getattr(module, "DIALECTS", DIALECTS):
                continue
            run: Benchmark = module.run
            began = time.perf_counter()
            with fresh_database(dialect) as url:
                results = run(dialect, url)
            rows = [(dialect, m) for m in results]
            everything += rows
            took = time.perf_counter() - began
            console.print(results_table(f"{name} on {dialect} ({took:.1f} s)", rows))
    console.print(results_table("Summary", everything))
    console.print(f"Total {time.perf_counter() - started:.0f} s")
    if args.json:
        document = [
            {"dialect": d, **asdict(m), "ratio": m.ratio, "verdict": m.verdict}
            for d, m in everything
        ]
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
