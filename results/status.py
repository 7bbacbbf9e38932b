"""A run's status.json, typed: the one definition of what runners/run.py writes and when each field is
there. Written when the run starts (`running`), rewritten when it ends — completed, diverged, pruned,
halted (RunStatus.message says how) or failed (RunStatus.error says why) — with its outcome. Readers
check a finished record's fields against records.FINISHED_KEYS (a subset of these)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

# Written only when set: a WSD branch's origin, an ended run's message, a failed run's error.
WHEN_SET = ("branched_from", "message", "error")
# Written once the run has ended (`ended` set), null or not.
AT_END = ("ended", "epochs_done", "epochs_to_target", "best", "final", "target_met_at_end", "profile")
# A tuning trial's (`study` set): its study and its score (results/tuning.py), null when it diverged.
TRIAL = ("study", "score")


@dataclass(frozen=True)
class RunStatus:
    run_id: str
    suite: str
    task: str
    recipe: str | None  # the published recipe's overlay, None for a grid cell's run
    optimizer: str
    schedule: str
    schedule_kind: str
    seed: int
    epochs: int  # the run's budget
    max_epochs: int  # the task's
    budget_free: bool
    lr: dict  # {"value", "origin"}
    weight_decay: float | None
    clip_grad: dict  # {"value", "origin"}
    split: str  # test | validation
    trial: int | None  # a tuning trial's number
    target: dict  # results/targets.py Target.as_dict()
    environment: dict  # device, torch, git sha, host, command, threads
    fabricated_data: bool
    started: str
    status: str = "running"
    branched_from: dict | None = None
    ended: str | None = None
    epochs_done: int | None = None
    epochs_to_target: int | None = None
    best: dict | None = None
    final: dict | None = None
    target_met_at_end: bool | None = None
    profile: dict | None = None
    message: str | None = None
    error: str | None = None
    study: str | None = None
    score: float | None = None

    def record(self) -> dict:
        """status.json's content: every field, less those not written at this stage."""
        out = asdict(self)
        left_out = [k for k in WHEN_SET if out[k] is None]
        left_out += list(AT_END) if self.ended is None else []
        left_out += list(TRIAL) if self.study is None else []
        for key in left_out:
            del out[key]
        return out
