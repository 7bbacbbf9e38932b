"""Schedule-Free AdamW, Lion and Muon (conf/optimizer/sf_adamw, lion, muon): each update against its
paper's formula or torch's reference class, the Muon/AdamW parameter split of real task models, exact
resume of Schedule-Free through the engine, and every config composing with its sourced centres."""
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import CONF, TINY, compose_all, compose_cfg, execute_at
from results import records
from results.errors import UserError
from runners.spec import configured_lr, configured_wd, resolve_run, resolve_schedule, validate
from runners.muon import MuonAdamW
from runners.optimizers import apply_weight_decay, build_optimizer, set_lr, set_momentum
from runners.run import execute, make_task

LR, WD = 0.05, 0.1
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
NEW = ("sf_adamw", "lion", "muon")


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x)


def toy_grad(model):
    model.zero_grad()
    x = torch.linspace(-1, 1, 12).reshape(4, 3)
    ((model(x) - 0.5) ** 2).sum().backward()


def cfg_of(name):
    return {**OmegaConf.to_container(compose_cfg([f"optimizer={name}"]).optimizer), "weight_decay": WD}


def test_sf_adamw_follows_the_paper_and_evaluates_at_x():
    """Defazio et al. 2024 Algorithm 1 (AdamW form, r = 0): z <- z - lr (g / (sqrt(v_hat) + eps) + wd y),
    x <- (1 - c) x + c z with c = lr_max^2 / sum of lr_max^2, y <- (1 - beta1) z + beta1 x."""
    torch.set_default_dtype(torch.float64)
    try:
        model = Toy()
        opt = build_optimizer(cfg_of("sf_adamw"), model, LR)
        params = list(model.parameters())
        z, x = [p.detach().clone() for p in params], [p.detach().clone() for p in params]
        v = [torch.zeros_like(p) for p in params]
        (beta1, beta2), lr_max, weight_sum = (0.9, 0.999), 0.0, 0.0
        for t, mult in enumerate((0.5, 1.0, 1.0, 0.8)):  # a warm-up, then a lower LR: lr_max stays 1.0
            set_lr(opt, mult)
            toy_grad(model)
            grads, ys = [p.grad.clone() for p in params], [p.detach().clone() for p in params]
            apply_weight_decay(opt, "native")  # does nothing: the class decays
            opt.step()
            lr = LR * mult
            lr_max = max(lr_max, lr)
            weight_sum += lr_max ** 2
            c = lr_max ** 2 / weight_sum
            for i, p in enumerate(params):
                v[i] = beta2 * v[i] + (1 - beta2) * grads[i] ** 2
                step = grads[i] / ((v[i] / (1 - beta2 ** (t + 1))).sqrt() + 1e-8)
                z[i] = z[i] - lr * (step + (WD * ys[i] if p.ndim >= 2 else 0))  # no decay on the bias
                x[i] = (1 - c) * x[i] + c * z[i]
                torch.testing.assert_close(p.detach(), (1 - beta1) * z[i] + beta1 * x[i], rtol=0, atol=1e-12)
        y = [p.detach().clone() for p in params]
        with opt.evaluation_weights():
            for p, xi in zip(params, x):
                torch.testing.assert_close(p.detach(), xi, rtol=0, atol=1e-12)
        assert all(torch.equal(p, yi) for p, yi in zip(params, y))  # y restored bit for bit
        assert all(g["train_mode"] for g in opt.param_groups)
        toy_grad(model)
        opt.step()  # still in train mode: schedulefree's step would refuse otherwise
    finally:
        torch.set_default_dtype(torch.float32)


class Killed(BaseException):
    """A kill after a checkpoint: not an Exception, so the run is left `running`, as after SIGKILL."""


def test_sf_adamw_resumes_exactly_through_the_engine(tmp_path):
    args = [*TINY, "optimizer=sf_adamw", "schedule=constant", "epochs=3", "deterministic=true", "threads=1"]
    clean_cfg, killed_cfg = compose_all([[*args, f"results_dir={tmp_path / d}"] for d in ("clean", "killed")])
    clean = execute_at(clean_cfg)

    def kill_after_2(row):
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        execute(resolve_run(killed_cfg), after_epoch=kill_after_2)
    path = tmp_path / "killed" / clean.relative_to(tmp_path / "clean")
    state = torch.load(path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and all(g["train_mode"] for g in state["optimizer"]["param_groups"])
    assert all("z" in s for s in state["optimizer"]["state"].values())  # y in the model, z here
    execute_at(killed_cfg)

    def rows(p):
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in records.read_metrics(p / "metrics.jsonl")]
    assert len(rows(clean)) == 3 and rows(path) == rows(clean)


def test_lion_is_algorithm_2():
    """Chen et al. 2023 Algorithm 2: c = b1 m + (1 - b1) g; theta <- theta - lr (sign(c) + wd theta);
    m <- b2 m + (1 - b2) g."""
    model, ref = Toy(), Toy()
    opt = build_optimizer(cfg_of("lion"), model, LR)
    m = [torch.zeros_like(p) for p in ref.parameters()]
    for _ in range(5):
        toy_grad(model)
        toy_grad(ref)
        apply_weight_decay(opt, "native")
        opt.step()
        with torch.no_grad():
            for i, p in enumerate(ref.parameters()):
                c = 0.9 * m[i] + 0.1 * p.grad
                p -= LR * (torch.sign(c) + (WD if p.ndim >= 2 else 0.0) * p)
                m[i] = 0.99 * m[i] + 0.01 * p.grad
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def step_both(ours, theirs, ours_params, their_params, steps=4, flat=False):
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p, q in zip(ours_params, their_params):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g, g.reshape(q.shape)
        ours.step()
        theirs.step()
        for p, q in zip(ours_params, their_params):
            torch.testing.assert_close(p.detach().reshape(q.shape), q.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("adjust", ["match_rms_adamw", "original"])
def test_muon_groups_match_torch_muon_on_matrices_and_flattened_filters(adjust):
    kw = dict(lr=0.02, weight_decay=WD, momentum=0.95, nesterov=True, ns_steps=5, adjust_lr_fn=adjust)
    torch.manual_seed(0)
    ours = [torch.randn(6, 4, requires_grad=True), torch.randn(4, 3, 2, 2, requires_grad=True)]
    start = [p.detach().clone() for p in ours]
    theirs = [start[0].clone().requires_grad_(), start[1].reshape(4, 12).clone().requires_grad_()]
    step_both(MuonAdamW([{"params": ours, "muon": True}], **kw), torch.optim.Muon(theirs, **kw), ours, theirs)
    assert all((p - s).abs().max() > 1e-3 for p, s in zip(ours, start))  # the steps moved them


@pytest.mark.parametrize("cycle", [False, True])
def test_scheduled_momentum_never_reaches_muon_and_reaches_adamw_only_when_asked(cycle):
    """muon.yaml's default: neither kind cycles; cycle_momentum=true: the AdamW groups' beta1 only."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    opt = build_optimizer({**cfg_of("muon"), "cycle_momentum": cycle}, model, LR, ["1.*"])
    set_momentum(opt, 0.85)
    kinds = {g["muon"]: g for g in opt.param_groups}
    assert kinds[True]["momentum"] == 0.95 and "betas" not in kinds[True]
    assert kinds[False]["betas"] == ((0.85 if cycle else 0.9), 0.99) and "momentum" not in kinds[False]


def test_adamw_groups_match_torch_adamw():
    kw = dict(lr=0.01, weight_decay=WD, betas=(0.9, 0.99), eps=1e-8)
    torch.manual_seed(0)
    ours = [torch.randn(5, 3, requires_grad=True), torch.randn(5, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    step_both(MuonAdamW([{"params": ours, "muon": False}], **kw), torch.optim.AdamW(theirs, **kw), ours, theirs)


def split_of(task):
    cfg = compose_cfg([f"task={task}", "optimizer=muon"])
    model = make_task(resolve_run(cfg), torch.device("cpu")).build_model()
    opt = build_optimizer({**OmegaConf.to_container(cfg.optimizer), "weight_decay": WD}, model, 1e-3,
                          list(cfg.task.io_params))
    names = {id(p): n for n, p in model.named_parameters()}
    by_kind = {True: set(), False: set()}
    for g in opt.param_groups:
        by_kind[g["muon"]] |= {names[id(p)] for p in g["params"]}
        assert g["weight_decay"] == (WD if any(p.ndim >= 2 for p in g["params"]) else 0.0)
    matrices = {n for n, p in model.named_parameters() if p.ndim >= 2}
    return by_kind[True], by_kind[False], matrices


def test_muon_split_of_a_vision_twin():
    muon, adamw, matrices = split_of("digits_wrn")
    assert muon == matrices - {"body.0.weight", "head.weight"} and len(muon) >= 4  # the hidden convs
    assert adamw == set(names_of("digits_wrn")) - muon  # first conv, classifier, every bias and BN


def names_of(task):
    return [n for n, _ in make_task(resolve_run(compose_cfg([f"task={task}"])), torch.device("cpu")).build_model()
            .named_parameters()]


def test_muon_split_of_the_lstm_twin():
    muon, adamw, _ = split_of("synth_awd_lstm")
    assert muon == {f"layers.{i}.lstm.weight_{k}_l0" for i in (0, 1) for k in ("ih", "hh")}
    assert adamw == set(names_of("synth_awd_lstm")) - muon and "encoder.weight" in adamw


def test_muon_split_refuses_bad_io_params():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    cfg = cfg_of("muon")
    with pytest.raises(ValueError, match=r"task.io_params \['typo.\*'\] match no parameter"):
        build_optimizer(cfg, model, LR, ["0.weight", "typo.*"])
    with pytest.raises(ValueError, match="leave no hidden weight matrix"):
        build_optimizer(cfg, model, LR, ["*.weight"])


@pytest.mark.parametrize("overrides,match", [
    (["optimizer=muon", "task.io_params=[]"], "task.io_params must name"),
    (["optimizer=ntasgd", "optimizer.wd_mode=native", "optimizer.lr=1"], "wd_mode=native needs a class that decays itself"),
])
def test_config_checks_refuse(overrides, match):
    cfg = compose_cfg(overrides)
    with pytest.raises(UserError, match=match):
        validate(cfg, resolve_schedule(cfg), configured_lr(cfg)[0])


def test_every_task_composes_with_the_new_optimizers_at_their_sourced_centres():
    tasks = [t for t in TASKS if t != "digits_pretrain"]  # pre-training only: its tables name adam_l2
    cfgs = compose_all([[f"task={t}", f"optimizer={o}", "schedule=constant"] for t in tasks for o in
                        ("adamw", *NEW)])
    for i in range(0, len(cfgs), 4):
        adamw, sf, lion, muon = cfgs[i:i + 4]
        for cfg in (sf, lion, muon):
            validate(cfg, resolve_schedule(cfg), configured_lr(cfg)[0])
            assert configured_lr(cfg)[1] == f"task.lr[{cfg.optimizer.name}]"
            assert configured_wd(cfg)[1] == f"task.wd[{cfg.optimizer.name}]"
        (lr, _), (wd, _) = configured_lr(adamw), configured_wd(adamw)
        assert configured_lr(sf)[0] == configured_lr(muon)[0] == lr
        assert configured_wd(sf)[0] == configured_wd(muon)[0] == wd
        assert configured_lr(lion)[0] == pytest.approx(lr / 3, rel=0.03)  # 2 significant digits
        assert configured_wd(lion)[0] == pytest.approx(wd * 3)


@pytest.mark.parametrize("optimizer", NEW)
def test_each_trains_through_the_engine(optimizer, tmp_path):
    path = execute_at(compose_cfg([*TINY, f"optimizer={optimizer}", "schedule=constant", "epochs=2",
                                   f"results_dir={tmp_path}"]))
    first, second = records.read_metrics(path / "metrics.jsonl")
    assert second["train_loss"] < first["train_loss"] and second["test_acc"] > 0.15  # chance: 0.1


def test_batchnorm_statistics_are_recomputed_at_the_evaluation_weights():
    from contextlib import contextmanager

    from runners.capabilities import Capabilities
    from runners.engine import evaluate

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.BatchNorm1d(4))
    model[2].weight.requires_grad_(False)
    model[2].bias.requires_grad_(False)  # a frozen BN keeps its statistics
    batches = [torch.randn(8, 3) + i for i in range(3)]
    seen = []

    class Task:
        def loss(self, m, batch):
            return m(batch).sum()

        def evaluate(self, m):
            seen.append((m[1].running_mean.clone(), m[1].training))
            return {"x": 0.0}

    class Optimizer:
        batchnorm_refresh_batches = 2  # the first two batches only

        @contextmanager
        def evaluation_weights(self):
            yield

    frozen = model[2].running_mean.clone()
    evaluate(Task(), model, Capabilities.of(Task(), Optimizer()), "cpu", "fp32", refresh_batches=lambda: batches)
    with torch.no_grad():
        means = [model[0](b).mean(0) for b in batches[:2]]
    (mean, training), = seen
    assert not training and torch.allclose(mean, (means[0] + means[1]) / 2, atol=1e-6)
    assert model[1].momentum == 0.1 and torch.equal(model[2].running_mean, frozen)
    evaluate(Task(), model, Capabilities.of(Task(), object()), "cpu", "fp32",
             refresh_batches=lambda: batches)  # no refresh asked
    assert torch.equal(seen[1][0], seen[0][0])
