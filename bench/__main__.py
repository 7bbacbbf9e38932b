"""`python -m bench [--repeats N] [--gpu-check]`: run every section, print a table, write JSON."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
from pathlib import Path

from results.records import write_text_atomic

from .timing import machine, print_table

SECTIONS = ("engine", "vision", "recurrent")  # bench/<name>.py, each with run(repeats) -> dict
OUT = Path("results/bench/bench.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gpu-check", action="store_true", help="full-size CUDA throughput check")
    parser.add_argument("--only", nargs="*", default=SECTIONS, help="sections to run")
    args = parser.parse_args()
    if args.gpu_check:
        from .gpu_check import main as gpu_main

        return gpu_main()
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "sections": {}}
    for name in args.only:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            report["sections"][name] = {"skipped": f"not available ({exc})"}
            continue
        report["sections"][name] = module.run(repeats=args.repeats)
    write_text_atomic(OUT, json.dumps(report, indent=2) + "\n")
    print(f"machine: {report['machine']}")
    print_table(report["sections"])
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
