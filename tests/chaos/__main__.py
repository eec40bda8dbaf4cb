"""``python -m tests.chaos [--ci] [--mode direct|pgbouncer] [--only NAME,...]`` (as root)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from typing import Any

from tests.chaos.scenarios import CI_CUT, SCENARIOS, run_scenario
from tests.chaos.suite import Suite


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| mode | scenario | jobs | executions | duplicates | fences | jobs/s before | "
        "healthy hosts jobs/s before → during | recovery s | cron slots (skipped) | "
        "max conns (limit) | result |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        recovery = "-" if r["recovery"] is None else f"{r['recovery']:.1f}"
        lines.append(
            f"| {r['mode']} | {r['scenario']} | {r['jobs']} | {r['executions']} | "
            f"{r['duplicates']} | {r['fences']} | {r['baseline']:.0f} | "
            f"{r['healthy_before']:.0f} → {r['healthy_during']:.0f} | {recovery} | "
            f"{r['cron_slots']} ({r['cron_skipped']}) | "
            f"{r['connections']} ({r['limit']}) | {'ok' if not r['problems'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--ci", action="store_true", help="the shorter cut run by make test")
    parser.add_argument("--mode", action="append", choices=["direct", "pgbouncer"])
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--procs", type=int, default=3, help="worker processes per host")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--table", help="also write the table (markdown) here")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("chaos: refusing to run without root (it makes network namespaces)", file=sys.stderr)
        return 2
    modes = args.mode or ["direct", "pgbouncer"]
    bouncer = shutil.which("pgbouncer") or os.path.exists("/usr/sbin/pgbouncer")
    if "pgbouncer" in modes and not bouncer:
        print("chaos: pgbouncer is not installed (apt-get install pgbouncer)", file=sys.stderr)
        return 2
    plan = []
    for mode in modes:
        names = CI_CUT[mode] if args.ci else list(SCENARIOS)
        if args.only:
            names = [n for n in args.only.split(",") if n in SCENARIOS]
        plan += [(mode, SCENARIOS[n]) for n in names]

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    suite = Suite(procs=args.procs, concurrency=args.concurrency, keep=args.keep)
    rows: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        suite.setup()
        bouncer_started = False
        for mode, scenario in plan:
            if mode == "pgbouncer" and not bouncer_started:
                suite.cluster.start_bouncer()
                bouncer_started = True
            print(f"chaos: {mode} {scenario.name}: {scenario.what}", flush=True)
            row = run_scenario(suite, scenario, mode)
            rows.append(row)
            timing = ", ".join(f"{k} {v:.0f} s" for k, v in row["phases"].items())
            dying = row["started_while_dying"]
            if dying:
                timing += f"; {dying} execution(s) started while their process was being killed"
            print(f"  {timing}", flush=True)
            for problem in row["problems"]:
                print(f"  FAIL {problem}", flush=True)
    finally:
        suite.teardown()
    output = table(rows)
    print(output)
    print(f"chaos: {len(rows)} scenario(s) in {time.monotonic() - began:.0f} s")
    if args.table:
        with open(args.table, "w") as f:
            f.write(output + "\n")
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
