"""The language models "as published": where the blog's code (fastai 0.7 at 6768875, sgugger/Adam-experiments
at b1ede77) and awd-lstm-lm (salesforce/awd-lstm-lm at 1d466ec) differ, the task's default is the blog's
form and an option gives awd-lstm-lm's. Each test names the lines it pins."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from tqdm import tqdm

from conftest import compose_cfg, execute_at
from results import records
from runners.config import OptimizerConf, RunConf
from runners.engine import train_epoch
from runners.optimizers import build_optimizer
from suites.text.data import PAD, Corpus, fastai_lengths, with_pad_token
from suites.text.tasks import LanguageModelConf, LanguageModelTask

VOCAB = 7


def tiny_task(**options) -> LanguageModelTask:
    sizes = dict(emb_size=8, hidden_size=12, layers=2, batch_size=4, bptt=10, eval_batch_size=2,
                 test_batch_size=1, dropout_input=0.0, dropout_output=0.0, dropout_weight=0.0,
                 dropout_embedding=0.0, dropout_hidden=0.0)
    g = torch.Generator().manual_seed(0)
    corpus = Corpus(*(torch.randint(0, VOCAB, (n,), generator=g) for n in (800, 53, 50)),
                    words=[f"w{i}" for i in range(VOCAB)])
    return LanguageModelTask(LanguageModelConf(**{**sizes, **options}), corpus, "cpu")


# b. AR placement ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("after", [None, True])  # None: the task's default
def test_ar_on_the_undropped_output_as_fastai_or_after_dropout_as_awd_lstm_lm(after):
    """fastai lm_rnn.py:13 @6768875 penalises `dropped_hs[-1]`, the encoder's last output, which has no
    dropout (:109-110; the decoder drops it for itself, :158); awd-lstm-lm main.py:201 @1d466ec
    penalises the output after output dropout (model.py:90-91)."""
    options = {} if after is None else {"ar_after_output_dropout": after}
    task = tiny_task(dropout_output=0.5, ar_alpha=3.0, tar_beta=0.0, **options)
    model = task.build_model().train()
    batch = task.train_batches(0, torch.Generator().manual_seed(0))[0]
    torch.manual_seed(1)
    loss = task.loss(model, batch)
    torch.manual_seed(1)  # the same dropout masks again
    out = model(batch.inputs)
    assert not torch.allclose(out.last_dropped, out.last_output)
    cross_entropy = F.cross_entropy(out.logits.reshape(-1, task.vocab_size), batch.targets.reshape(-1))
    penalised = out.last_dropped if after else out.last_output
    assert loss.item() == pytest.approx((cross_entropy + 3.0 * penalised.pow(2).mean()).item(), rel=1e-6)


# c. LR x seq_len / bptt ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scaled", [None, True])
def test_lr_scaled_by_window_length_only_as_awd_lstm_lm(scaled):
    """awd-lstm-lm main.py:186-187 @1d466ec sets lr * seq_len / bptt for each window; fastai 0.7 steps at
    the group's LR (model.py:64-70 @6768875; its loader yields no length, text.py:161-172)."""
    options = {} if scaled is None else {"lr_scale_by_seq_len": scaled}
    batches = tiny_task(**options).train_batches(0, torch.Generator().manual_seed(0))
    lengths = [b.inputs.shape[0] for b in batches]
    assert len(set(lengths)) > 1
    expected = [n / 10 for n in lengths] if scaled else [1.0] * len(lengths)
    assert [b.lr_scale for b in batches] == pytest.approx(expected)


class DecayOnly:
    """The LM task's first window with a zero-gradient loss: SGD then moves nothing, the step is the
    engine's decoupled decay alone."""

    def __init__(self, task):
        self.task = task

    def train_batches(self, epoch, generator):
        return self.task.train_batches(epoch, generator)[:1]

    def loss(self, model, batch):
        return sum(p.sum() for p in model.parameters()) * 0.0


@pytest.mark.parametrize("scaled", [False, True])
def test_decoupled_decay_uses_the_window_scaled_lr_exactly_when_the_lr_is_scaled(scaled):
    """runners/engine.py train_epoch: set_lr(schedule x lr_scale), then apply_weight_decay with that LR
    (p <- p (1 - lr wd)); so the decay follows awd-lstm-lm's scaled LR (main.py:186-187, where wd is
    SGD's own L2, :235 @1d466ec) and fastai's unscaled one (model.py:64-69 @6768875)."""
    task = tiny_task(lr_scale_by_seq_len=scaled)  # fastai loader: the first window is bptt + 25 = 35
    model = task.build_model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer({"_target_": "torch.optim.SGD", "weight_decay": 0.1,
                                 "no_decay_bias_norm": False}, model, lr=0.5)
    batches = DecayOnly(task).train_batches(0, torch.Generator().manual_seed(0))
    run = RunConf(optimizer=OptimizerConf(wd_mode="decoupled"))
    train_epoch(DecayOnly(task), model, optimizer, batches, lambda i: (1.0, None), run, torch.device("cpu"),
                0, tqdm(disable=True))
    factor = 1 - 0.5 * 0.1 * (35 / 10 if scaled else 1.0)
    for old, new in zip(before, model.parameters()):
        assert torch.allclose(new.detach(), old * factor, rtol=1e-6, atol=1e-7)


# d. The blog's evaluation ------------------------------------------------------------------------------

def by_hand(model, ids, bptt):
    """One forward over the scored tokens (batch 1, zero state, so carried across windows), the sum
    divided by bptt x whole windows, as lm_val_fns.py:34-53 @b1ede77."""
    windows = len(ids) // bptt
    scored = min(windows * bptt, len(ids) - 1)
    logits = model(ids[:scored].view(-1, 1)).logits.reshape(scored, -1)
    return F.cross_entropy(logits, ids[1:scored + 1], reduction="sum").item() / (bptt * windows)


def test_blog_evaluation_batch_one_windows_of_bptt_tail_dropped_by_hand():
    """Adam-experiments lm_val_fns.py:34-53 @b1ede77 (`my_validate`, called on the final model for
    valid then test by train_rnn.py:72-75): batch 1 (:25), state reset once (:44) and carried, n // bptt
    windows (:16, :22), the sum over bptt x windows (:52). Valid: 53 tokens, windows of 10 -> 50 targets,
    the last 2 dropped; test: 50 tokens -> the last window is one short but the divisor is still 50."""
    task = tiny_task(blog_eval_bptt=10, pad_token=False)
    model = task.build_model().eval()
    assert task.final_metrics == ("val_ppl_blog", "test_ppl_blog")
    with torch.no_grad():
        metrics = task.evaluate_final(model)
        expected = {"val_ppl_blog": math.exp(by_hand(model, task.valid_ids, 10)),
                    "test_ppl_blog": math.exp(by_hand(model, task.test_ids, 10))}
        everything = math.exp(F.cross_entropy(model(task.valid_ids[:-1].view(-1, 1)).logits.squeeze(1),
                                              task.valid_ids[1:]).item())
    assert metrics == pytest.approx(expected, rel=1e-6)
    assert metrics["val_ppl_blog"] != pytest.approx(everything, rel=1e-6)  # the tail really is dropped
    assert task.evaluate_final(model) == metrics  # the state starts from zero each time
    off = tiny_task(blog_eval_bptt=0)
    assert off.final_metrics == () and off.evaluate_final(model) == {}


SYNTH = ["task=synth_awd_lstm", "task.train_tokens=1200", "task.valid_tokens=300", "task.test_tokens=300",
         "task.emb_size=8", "task.hidden_size=12", "task.batch_size=8", "task.bptt=10",
         "task.eval_batch_size=5", "task.test_batch_size=5", "task.blog_eval_bptt=100", "optimizer=adamw",
         "schedule=one_cycle", "progress=false"]


def synth_run(results, *overrides):
    path = execute_at(compose_cfg([*SYNTH, *overrides, f"results_dir={results}"]))
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return path, rows, json.loads((path / "status.json").read_text())


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    return synth_run(tmp_path_factory.mktemp("results"), "epochs=2")


def test_blog_metrics_are_computed_once_into_the_last_row(two_epochs):
    """runners/engine.py fit: evaluate_final on the last epoch only, merged into its row."""
    _, rows, _ = two_epochs
    assert [r["epoch"] for r in rows] == [1, 2]
    assert "val_ppl_blog" not in rows[0] and "test_ppl_blog" not in rows[0]
    assert 1 < rows[1]["val_ppl_blog"] < 20 and 1 < rows[1]["test_ppl_blog"] < 20


def test_status_final_has_the_blog_metrics_of_a_longer_run(two_epochs):
    _, rows, status = two_epochs
    assert status["final"]["val_ppl_blog"] == rows[-1]["val_ppl_blog"]


def test_a_run_resumed_after_its_last_row_keeps_the_blog_metrics(results):
    """The row and its checkpoint are written with the metrics in: a run killed before its status was
    written resumes with nothing left to train and reports them from the row."""
    path, rows, status = synth_run(results, "epochs=1", "keep_checkpoint=true")
    assert status["final"]["val_ppl_blog"] == rows[0]["val_ppl_blog"]
    (path / "status.json").write_text(json.dumps({**status, "status": "running"}))  # killed there
    _, rows_again, resumed = synth_run(results, "epochs=1", "keep_checkpoint=true")
    assert (path / records.RESUMES_FILE).exists() and rows_again == rows
    assert resumed["final"]["val_ppl_blog"] == rows[0]["val_ppl_blog"]


# g1. The `_pad_` token ---------------------------------------------------------------------------------

def test_pad_token_at_index_zero_never_a_target():
    """Adam-experiments train_rnn.py:47-50 @b1ede77: `itos.insert(0,'_pad_')` ahead of the training words
    by frequency (WikiText-2: 33,279 words); awd-lstm-lm's dictionary has no such token."""
    task = tiny_task()
    assert task.words[0] == PAD and task.vocab_size == VOCAB + 1
    assert task.build_model().decoder.out_features == VOCAB + 1
    for data in (task.train_data, task.valid_data, task.test_data, task.valid_ids):
        assert data.min() >= 1
    assert all((b.targets != 0).all() for b in task.train_batches(0, torch.Generator().manual_seed(0)))
    plain = tiny_task(pad_token=False)
    assert plain.vocab_size == VOCAB and PAD not in plain.words
    assert torch.equal(task.train_data, plain.train_data + 1)
    corpus = Corpus(torch.tensor([2, 0]), torch.tensor([1]), torch.tensor([0]), ["a", "b", "c"])
    assert with_pad_token(corpus).words == [PAD, "a", "b", "c"]


# g2. fastai 0.7's BPTT windows ---------------------------------------------------------------------------

def fastai_transcribed(n, bptt, generator):
    """fastai/text.py:161-174 @6768875 line by line, np.random replaced by the seeded generator."""
    rand = lambda: torch.rand((), generator=generator).item()  # noqa: E731
    normal = lambda m, s: torch.normal(float(m), float(s), (), generator=generator).item()  # noqa: E731
    i, it, out = 0, 0, []
    while i < n - 1 and it < n // bptt - 1:
        if i == 0:
            seq_len = bptt + 5 * 5
        else:
            b = bptt if rand() < 0.95 else bptt / 2.
            seq_len = max(5, int(normal(b, 5)))
        out.append(min(seq_len, n - 1 - i))
        i += seq_len
        it += 1
    return out


@pytest.mark.parametrize("rows,bptt", [(400, 10), (100_000, 70), (60, 10)])
def test_fastai_windows_first_bptt_plus_25_then_n_over_bptt_minus_one(rows, bptt):
    lengths = fastai_lengths(rows, bptt, torch.Generator().manual_seed(3))
    assert lengths == fastai_transcribed(rows, bptt, torch.Generator().manual_seed(3))
    assert lengths[0] == bptt + 25 and len(lengths) <= rows // bptt - 1
    if rows == 100_000:  # the epoch stops on the window count, short of the stream's end (~97%)
        assert len(lengths) == rows // bptt - 1 and 0.95 < sum(lengths) / rows < 0.99


def test_task_default_windows_are_fastai_and_awd_lstm_on_request():
    """The task's windows: fastai's LanguageModelLoader by default (text.py:161-174 @6768875), else
    awd-lstm-lm's loop over the whole stream (main.py:179-182 @1d466ec)."""
    generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    task = tiny_task()  # 800 tokens / batch 4 = 200 rows, bptt 10
    batches = task.train_batches(0, generator())
    assert batches[0].inputs.shape[0] == 35 and len(batches) <= 200 // 10 - 1
    assert [b.inputs.shape[0] for b in batches] == fastai_lengths(200, 10, generator())
    awd = tiny_task(bptt_loader="awd_lstm").train_batches(0, generator())
    assert sum(b.inputs.shape[0] for b in awd) == 199


# The recipes -------------------------------------------------------------------------------------------

BLOG = {"ar_after_output_dropout": False, "lr_scale_by_seq_len": False, "bptt_loader": "fastai",
        "pad_token": True, "zero_decoder_bias": False, "blog_eval_bptt": 2000}
AWD_LSTM_LM = {**BLOG, "ar_after_output_dropout": True, "lr_scale_by_seq_len": True,
               "bptt_loader": "awd_lstm", "pad_token": False, "zero_decoder_bias": True}


@pytest.mark.parametrize("overrides,expected", [
    (["task=awd_lstm_wt2"], BLOG), (["task=qrnn_wt2"], BLOG), (["task=synth_awd_lstm"], BLOG),
    (["task=synth_qrnn"], BLOG), (["+recipe=awd_lstm_blog"], BLOG), (["+recipe=qrnn_blog"], BLOG),
    (["+recipe=awd_lstm_reference"], AWD_LSTM_LM), (["+recipe=qrnn_reference"], AWD_LSTM_LM)])
def test_tasks_default_to_the_blog_and_reference_recipes_to_awd_lstm_lm(overrides, expected):
    task = compose_cfg(overrides).task
    assert {key: task[key] for key in expected} == expected


# The decoder bias ----------------------------------------------------------------------------------------

def test_decoder_bias_pytorch_default_as_fastai_zero_as_awd_lstm_lm():
    """fastai lm_rnn.py:151-154 @6768875 re-initialises only the decoder weight (then tied), so the bias
    (train_rnn.py:82 @b1ede77 passes bias=True) keeps nn.Linear's U(-1/sqrt(400), 1/sqrt(400)); zero
    init came to fastai on 2018-07-09. awd-lstm-lm model.py:65 @1d466ec zeroes it."""
    torch.manual_seed(0)
    bias = tiny_task().build_model().decoder.bias
    assert bias.abs().max() <= 1 / math.sqrt(8) and bias.abs().min() > 0
    assert (tiny_task(zero_decoder_bias=True).build_model().decoder.bias == 0).all()
