"""Command-line start-up: ``queuekit --help`` and one ``queuekit add`` on SQLite.

Every command pays the start-up, so an operator typing five ``add`` calls
feels it five times. Each figure is the median wall time of a few runs of
the installed ``queuekit`` script in a fresh process; the baseline is the
same interpreter starting and exiting (``python -c pass``), the floor no
command can go below. Targets: under 0.25 s for ``--help``, under 0.4 s for
``add``. On a busy machine wall times grow with the load, so each command's
CPU time (user + system, of the child process) is reported too: on an idle
machine it is close to the wall time.

The commands run as an installed package does: from compiled bytecode
(installers compile every module). The first, untimed run of each command
writes that bytecode to a temporary cache outside the checkout, even where
the environment asks Python not to write bytecode, so the timed runs
measure start-up rather than compiling the sources again.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Measurement

ORDER = 5
DIALECTS = ("sqlite",)
RUNS = 7


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def compiled_environment(cache: str) -> dict[str, str]:
    """This environment, with bytecode written to and read from ``cache``."""
    environment = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def median_seconds(command: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """Median wall and CPU seconds of ``command`` over RUNS runs (after one warm-up run)."""
    subprocess.run(command, check=True, capture_output=True, env=environment)
    wall, cpu = [], []
    for _ in range(RUNS):
        began, cpu_before = time.perf_counter(), children_cpu()
        subprocess.run(command, check=True, capture_output=True, env=environment)
        wall.append(time.perf_counter() - began)
        cpu.append(children_cpu() - cpu_before)
    return statistics.median(wall), statistics.median(cpu)


def queuekit_script() -> str:
    """The ``queuekit`` script next to this interpreter (the installed entry point)."""
    script = Path(sys.executable).parent / "queuekit"
    if not script.exists():
        raise FileNotFoundError(f"no queuekit script at {script}; run `make venv` first")
    return str(script)


def run(dialect: str, url: str) -> list[Measurement]:
    """Time ``--help`` and ``add`` against an interpreter that only starts."""
    with tempfile.TemporaryDirectory(prefix="queuekit-bytecode-") as cache:
        return measure(url, compiled_environment(cache))


def measure(url: str, environment: dict[str, str]) -> list[Measurement]:
    """The start-up figures of each command, and of the bare interpreter."""
    floor_wall, floor_cpu = median_seconds([sys.executable, "-c", "pass"], environment)
    script = queuekit_script()
    commands = {
        "queuekit --help": ([script, "--help"], 0.25),
        "queuekit add (SQLite)": (
            [script, "--database-url", url, "add", "bench.startup", "{}"],
            0.4,
        ),
    }
    results = []
    for name, (command, limit) in commands.items():
        wall, cpu = median_seconds(command, environment)
        for kind, value, floor in (("wall", wall, floor_wall), ("CPU", cpu, floor_cpu)):
            results.append(
                Measurement(
                    f"{name}, {kind}",
                    value,
                    "s",
                    "python -c pass",
                    floor,
                    lower_is_better=True,
                    limit=limit,
                )
            )
    return results
