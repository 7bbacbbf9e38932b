"""CLI of the report (key=value arguments, no Hydra):

    python -m report suite=NAME [results_dir=results] [out_dir=DIR] [screenshot=false|true|auto]
    python -m report check suite=NAME baseline=PATH [results_dir=results]   (a rehearsal: no baseline)
    python -m report baseline suite=NAME out=PATH [results_dir=results]
    python -m report export tensorboard suite=NAME [results_dir=results] [out_dir=DIR]

`export tensorboard` writes one TensorBoard event-file directory per run under
`<results_dir>/tensorboard/<suite>/` (report/export.py; needs the optional extra `.[tensorboard]`).

`check` exits 1 when a cell's epochs-to-target worsens beyond the baseline's tolerance or a verdict
drops (report/gate.py), 0 otherwise; on a rehearsal suite (report/rehearsal.py) it compares nothing and
exits 1 when a cell did not run. `baseline` refuses a rehearsal suite, or one holding a run that read
fabricated data. Bad arguments, a results dir that does not exist, a suite with no run and an output that
cannot be written exit 2 with one `error: ...` line (no traceback).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from results.errors import UserError
from results.layout import Layout
from results.records import iter_run_dirs, name_problem, write_text_atomic

from . import build, not_writable
from .analysis import analyse
from .browser import check_page, find_chromium
from .export import export_tensorboard, require_tensorboard
from .gate import check, load_baseline, refuse_as_baseline, snapshot
from .load import load_suite
from .problems import read_plan

COMMANDS = {"build": ({"suite"}, {"results_dir", "out_dir", "screenshot"}),
            "check": ({"suite"}, {"baseline", "results_dir"}),  # baseline: required unless a rehearsal
            "baseline": ({"suite", "out"}, {"results_dir"}),
            "export tensorboard": ({"suite"}, {"results_dir", "out_dir"})}
FORMATS = [c.split()[1] for c in COMMANDS if c.startswith("export ")]


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> tuple[str, dict[str, str]]:
    command = "build"
    if argv and "=" not in argv[0]:
        command, argv = argv[0], argv[1:]
    if command == "export":  # its format is a second word: `export tensorboard`
        if not argv or argv[0] not in FORMATS:
            got = f", got {argv[0]!r}" if argv else ""
            raise UsageError(f"export: expected a format, one of {', '.join(FORMATS)}{got}")
        command, argv = f"export {argv[0]}", argv[1:]
    if command not in COMMANDS:
        raise UsageError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    args = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {arg!r}")
        args[key] = value
    required, optional = COMMANDS[command]
    if missing := sorted(required - args.keys()):
        raise UsageError(f"{command}: missing {', '.join(k + '=...' for k in missing)}")
    if unknown := sorted(args.keys() - required - optional):
        raise UsageError(f"{command}: unknown argument(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(required | optional))}")
    if problem := name_problem("suite", args["suite"]):  # it becomes runs/<suite>, reports/<suite>
        raise UsageError(problem)
    return command, args


def records_dir(args: dict) -> str:
    """The results dir, once it is known to hold runs of the suite: without any, a page of empty tables
    (or a gate with nothing to compare) would look like a result."""
    results, suite = Path(args.get("results_dir", "results")), args["suite"]
    if not results.is_dir():
        state = "is not a directory" if results.exists() else "does not exist"
        raise UsageError(f"results dir {results} {state}; give results_dir=DIR, the directory the runs "
                         f"wrote their records to")
    runs = Layout.at(results).runs(suite).parent
    try:
        found = iter_run_dirs(results, suite)
        known = sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    except OSError as exc:
        raise UsageError(f"results dir {results} cannot be read ({exc.strerror or exc}); make it "
                         f"readable, or give results_dir=DIR") from None
    if not found:
        raise UsageError(f"suite {suite!r} has no runs under {runs / suite}; run it first "
                         f"(python -m runners.grid suite={suite}) or pick a suite with runs there: "
                         f"{', '.join(known) or 'none'}")
    return str(results)


def _screenshot(page: Path, mode: str) -> None:
    """Best effort unless asked for: a PNG of the page beside it, and the browser's console errors."""
    if mode == "false" or (mode == "auto" and find_chromium() is None):
        return
    try:
        result = check_page(page, page.with_name("screenshot.png"))
    except (OSError, RuntimeError, TimeoutError) as exc:
        if mode == "true":
            raise UsageError(f"screenshot=true: {exc}") from None
        print(f"warning: no screenshot ({exc})", file=sys.stderr)
        return
    print(f"screenshot={result.screenshot}")
    for error in result.errors:
        print(f"warning: browser console: {error}", file=sys.stderr)


def run_build(args: dict) -> int:
    mode = args.get("screenshot", "false")  # opt-in: a headless browser is slow and not everywhere
    if mode not in ("auto", "true", "false"):
        raise UsageError(f"screenshot={mode!r}: expected auto, true or false")
    page = build(args["suite"], records_dir(args), args.get("out_dir"))
    print(f"report={page}")
    _screenshot(page, mode)
    return 0


def run_check(args: dict) -> int:
    # Before the records (slow): a rehearsal reads no baseline, any other suite needs a readable one.
    _, rehearsal = read_plan(args.get("results_dir", "results"), args["suite"], [])
    baseline, notes = {}, []
    if rehearsal and "baseline" in args:
        notes.append(f"baseline={args['baseline']} not read: a rehearsal is never compared with a baseline")
    elif not rehearsal:
        if "baseline" not in args:
            raise UsageError("check: missing baseline=... (only a rehearsal suite is checked without one)")
        try:
            baseline = load_baseline(Path(args["baseline"]))
        except (OSError, ValueError) as exc:
            raise UsageError(f"baseline={args['baseline']!r}: {exc}") from None
    result = check(analyse(load_suite(args["suite"], records_dir(args))), baseline)
    for note in [*notes, *result.notes]:
        print(f"note: {note}")
    for failure in result.failures:
        print(f"{'FAILED' if rehearsal else 'REGRESSION'}: {failure}")
    print(f"gate: {'passed' if result.ok else 'FAILED'} ({result.checked} {result.checked_what}, "
          f"{len(result.failures)} {'failure' if rehearsal else 'regression'}(s))")
    return 0 if result.ok else 1


def run_baseline(args: dict) -> int:
    records = load_suite(args["suite"], records_dir(args))
    refuse_as_baseline(records)  # a rehearsal's records, or fabricated data's, are never a baseline
    doc = snapshot(analyse(records))
    out = Path(args["out"])
    try:
        write_text_atomic(out, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise not_writable(out.parent, exc, "give out=PATH in a writable directory") from None
    print(f"baseline={out} ({len(doc['cells'])} cells, {len(doc['verdicts'])} verdicts)")
    return 0


def run_export_tensorboard(args: dict) -> int:
    require_tensorboard()  # before the records: the missing extra is the first thing to fix
    done = export_tensorboard(args["suite"], records_dir(args), args.get("out_dir"))
    for path, reason in done.skipped:
        print(f"warning: skipped {path}: {reason}", file=sys.stderr)
    print(f"tensorboard={done.out} ({done.runs} runs exported, {len(done.skipped)} corrupt skipped)")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        command, args = parse(sys.argv[1:] if argv is None else argv)
        return {"build": run_build, "check": run_check, "baseline": run_baseline,
                "export tensorboard": run_export_tensorboard}[command](args)
    except (UsageError, UserError) as exc:  # the user's to fix (ReportError among them): no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
