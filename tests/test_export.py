"""`python -m report export tensorboard`: run records made for the purpose, exported, and read back with
TensorBoard's own reader — every metric, the LR / momentum traces, the HParams, no duplicates on a
second export, corrupt runs skipped, bad arguments and a missing tensorboard refused with one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from report.__main__ import main
from results import records
from test_report_fixtures import write_run

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import metadata  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STARTED = "2026-01-01T00:00:00+00:00"  # write_run's start: 1767225600 s


def retrace(path: Path, samples: int, steps_per_epoch: int, momentum: bool = True) -> list[dict]:
    """Rewrite a fixture run's metrics as the engine writes them: `samples` LR / momentum samples per epoch
    at fractional epochs, `steps_per_epoch` optimizer steps, a second metric (null once, as NaN is
    stored), momentum null for an optimizer without one."""
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        e = row["epoch"]
        trace = [[round(e - 1 + i / samples, 4), 0.01 * e + 0.001 * i + 1e-7,
                  0.95 - 0.01 * i if momentum else None] for i in range(samples)]
        row.update(step=steps_per_epoch * e, lr_trace=trace, lr=trace[-1][1], momentum=trace[-1][2],
                   test_loss=None if e == 2 else 2.0 / (e + 0.3), wall_s=0.75 * e + 0.123)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def with_config(path: Path, config: dict) -> Path:
    """The run moved to the id its new config.yaml hashes to (a finished run's files must agree)."""
    new = path.with_name(records.run_id(config))
    path.rename(new)
    (new / "config.yaml").write_text(yaml.safe_dump(config))
    return new


@pytest.fixture
def suite(tmp_path):
    """Two good runs (an AdamW 1cycle probe that reached its target; an LM run with no momentum, fewer
    optimizer steps than samples, its weight decay only in config.yaml) and a corrupt one."""
    results = tmp_path / "results"
    adamw = write_run(results, "mini", "adamw", optimizer="adamw", schedule="one_cycle", seed=1, epochs=4,
                      reach_at=4, weight_decay=0.01, lr={"value": 0.004, "origin": "tuned"})
    lm = write_run(results, "mini", "lm", task="wt2_lm", optimizer="adam_l2", schedule="reference",
                   perplexity=True, epochs=3, recipe="lm_blog", status="diverged")
    lm = with_config(lm, {"fixture": "lm", "optimizer": {"weight_decay": 0.0005}})
    bad = write_run(results, "mini", "bad", seed=9)
    (bad / "status.json").write_text("{not json")
    runs = {"adamw": (adamw, retrace(adamw, samples=8, steps_per_epoch=13)),
            "lm": (lm, retrace(lm, samples=3, steps_per_epoch=1, momentum=False))}
    return results, runs, bad


def export(results: Path, *extra: str) -> int:
    return main(["export", "tensorboard", "suite=mini", f"results_dir={results}", *extra])


def exported(out: Path) -> dict[str, EventAccumulator]:
    """Every exported run, read back by TensorBoard's accumulator (all points kept, none purged)."""
    runs = {}
    for events in sorted(out.rglob("*tfevents*")):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0, "tensors": 0},
                               purge_orphaned_data=False)
        runs[str(events.parent.relative_to(out))] = acc.Reload()
    return runs


def f32(value: float) -> float:
    return float(np.float32(value))


def test_every_metric_trace_and_hparam_reads_back(suite, capsys):
    results, runs, _ = suite
    assert export(results) == 0
    out = results / "tensorboard" / "mini"
    assert capsys.readouterr().out.strip() == f"tensorboard={out} (2 runs exported, 1 corrupt skipped)"
    back = exported(out)
    adamw_id, lm_id = runs["adamw"][0].name, runs["lm"][0].name
    assert sorted(back) == [f"digits_resnet/adamw__one_cycle__grid__e4__s1__{adamw_id}",
                            f"wt2_lm/adam_l2__reference__lm_blog__e3__s0__{lm_id}"]
    for name, acc in back.items():
        path, rows = runs["lm" if name.startswith("wt2_lm") else "adamw"]
        metrics = {k for r in rows for k in r} - {"epoch", "step", "wall_s", "lr", "momentum", "lr_trace"}
        assert metrics == {"train_loss", "test_loss", "val_ppl" if "lm" in name else "test_acc"}
        for key in metrics:
            expected = [(r["epoch"], f32(r[key])) for r in rows if r[key] is not None]
            assert [(s.step, s.value) for s in acc.Scalars(f"metrics/{key}")] == expected, key
        assert [s.value for s in acc.Scalars("time/wall_s")] == [f32(r["wall_s"]) for r in rows]
        # an epoch's events at the run's own time: start + its wall_s
        assert [s.wall_time for s in acc.Scalars("time/wall_s")] == pytest.approx(
            [1767225600 + r["wall_s"] for r in rows])
        samples = [p for r in rows for p in r["lr_trace"]]
        lr = acc.Scalars("schedule/lr")
        assert [s.value for s in lr] == [f32(p[1]) for p in samples]
        steps = [s.step for s in lr]
        assert steps == sorted(set(steps)), "trace steps strictly increasing"
    adamw = back[next(n for n in back if n.startswith("digits"))]
    lr_steps = [s.step for s in adamw.Scalars("schedule/lr")]
    # 13 optimizer steps per epoch: each epoch's first sample at the previous epoch's cumulative step, the
    # others within the epoch
    assert lr_steps[::8] == [0, 13, 26, 39]
    assert all(13 * (i // 8) <= s < 13 * (i // 8 + 1) for i, s in enumerate(lr_steps))
    samples = [p for r in runs["adamw"][1] for p in r["lr_trace"]]
    momentum = adamw.Scalars("schedule/momentum")
    assert [(s.step, s.value) for s in momentum] == [(s, f32(p[2])) for s, p in zip(lr_steps, samples)]
    lm = back[next(n for n in back if n.startswith("wt2_lm"))]
    # one optimizer step per epoch, three samples: moved on one step each, still one point per sample
    assert [s.step for s in lm.Scalars("schedule/lr")] == list(range(9))
    assert "schedule/momentum" not in lm.Tags()["scalars"]  # momentum null throughout
    assert [(s.step, s.value) for s in adamw.Scalars("target/epochs_to_target")] == [(4, 4.0)]
    assert "target/epochs_to_target" not in lm.Tags()["scalars"]  # never reached


def session(acc: EventAccumulator) -> tuple[dict, int]:
    """The HParams plugin's view of a run: its hparams and its session's end status."""
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    values = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return values, end.status


def test_hparams_of_each_run(suite):
    results, runs, _ = suite
    assert export(results) == 0
    back = exported(results / "tensorboard" / "mini")
    adamw = session(back[next(n for n in back if n.startswith("digits"))])
    assert adamw == ({"task": "digits_resnet", "optimizer": "adamw", "schedule": "one_cycle",
                      "recipe": "none", "seed": 1.0, "lr": 0.004, "lr_origin": "tuned", "weight_decay": 0.01,
                      "epochs": 4.0, "target_metric": "test_acc", "status": "completed"}, 1)  # STATUS_SUCCESS
    lm_hparams, lm_status = session(back[next(n for n in back if n.startswith("wt2_lm"))])
    assert lm_hparams["recipe"] == "lm_blog" and lm_hparams["target_metric"] == "val_ppl"
    assert lm_hparams["weight_decay"] == 0.0005  # from config.yaml: this status.json has none
    assert lm_status == 2  # diverged: STATUS_FAILURE


def test_second_export_replaces_never_duplicates(suite, capsys):
    results, runs, _ = suite
    out = results / "tensorboard" / "mini"
    assert export(results) == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(first) == 2 and all("tfevents" in p.name for p in first)
    run = out / next(p for p in first if "adamw" in str(p)).parent
    stale = run / "events.out.tfevents.0000000001.older-export"  # a run re-run since has a new start time
    stale.write_bytes(b"")
    assert export(results) == 0
    again = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert again == first  # same files, same bytes: nothing appended, the stale one gone
    lr = exported(out)[str(run.relative_to(out))].Scalars("schedule/lr")
    assert len(lr) == 8 * 4


def test_out_dir_and_the_summary_names_corrupt_runs(suite, capsys, tmp_path):
    results, _, bad = suite
    assert export(results, f"out_dir={tmp_path / 'tb'}") == 0
    captured = capsys.readouterr()
    assert "(2 runs exported, 1 corrupt skipped)" in captured.out
    assert captured.err.startswith(f"warning: skipped {bad}: ") and "not valid JSON" in captured.err
    assert len(exported(tmp_path / "tb")) == 2 and not (results / "tensorboard").exists()


@pytest.mark.parametrize("argv,says", [
    (["export"], "export: expected a format, one of tensorboard"),
    (["export", "csv", "suite=mini"], "got 'csv'"),
    (["export", "tensorboard"], "missing suite=..."),
    (["export", "tensorboard", "suite=mini", "colour=red"], "unknown argument(s) colour"),
    (["export", "tensorboard", "suite=mini", "results_dir={results}/nope"], "does not exist"),
    (["export", "tensorboard", "suite=other", "results_dir={results}"], "suite 'other' has no runs"),
])
def test_bad_arguments_exit_2_with_one_line(suite, capsys, argv, says):
    results = suite[0]
    assert main([a.format(results=results) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: ") and says in captured.err
    assert not (results / "tensorboard").exists()


def test_without_tensorboard_one_line_and_nothing_written(suite, capsys, monkeypatch):
    results = suite[0]
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import tensorboard...` now raises ImportError
    assert export(results) == 2
    assert capsys.readouterr().err == ("error: TensorBoard export needs the tensorboard package: "
                                       "pip install -e '.[tensorboard]'\n")
    assert not (results / "tensorboard").exists()


def test_cli_exports_without_loading_torch(suite):
    code = ("import sys, report.__main__ as m; rc = m.main(sys.argv[1:]); "
            "loaded = [k for k in sys.modules if k == 'torch' or k.startswith(('torch.', 'tensorflow'))]; "
            "print(loaded); sys.exit(rc or (3 if loaded else 0))")
    done = subprocess.run([sys.executable, "-c", code, "export", "tensorboard", "suite=mini",
                           f"results_dir={suite[0]}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(2 runs exported, 1 corrupt skipped)" in done.stdout
