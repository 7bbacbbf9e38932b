"""WikiText loading (local layout, default directory), tokenisation and awd-lstm-lm batching."""
import pytest
import torch

from results.errors import DatasetMissing
from suites.text.data import (EOS, UNK, WIKITEXT_ENV, batchify, bptt_batches, bptt_lengths, build_corpus,
                              load_wikitext2)

# Lines in WikiText's own shape: leading space, headings, blank lines, <unk>, @-@ tokens.
TRAIN = [" ", " = Valkyria Chronicles = ", " ", " the game is a <unk> role @-@ playing game . ",
         " the game was released . ", ""]
VALID = [" ", " = Gameplay = ", " the <unk> game . "]
TEST = [" the game . ", " ", " = Plot = "]


def write_wikitext(directory, train=TRAIN, valid=VALID, test=TEST):
    directory.mkdir(parents=True, exist_ok=True)
    for split, lines in (("train", train), ("valid", valid), ("test", test)):
        (directory / f"wiki.{split}.tokens").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def test_local_files_tokenised_with_an_eos_per_line(tmp_path):
    corpus = load_wikitext2(str(write_wikitext(tmp_path / "wt2")))
    words = corpus.words
    decoded = [words[i] for i in corpus.train.tolist()]
    assert decoded[:6] == [EOS, "=", "Valkyria", "Chronicles", "=", EOS]
    assert decoded.count(EOS) == len(TRAIN)  # blank lines count too, as in the published totals
    assert len(decoded) == sum(len(line.split()) + 1 for line in TRAIN)
    # By training frequency, ties in order of first occurrence: <eos> 6, game 3, then "=" "the" "." 2.
    assert words[:5] == [EOS, "game", "=", "the", "."]


def test_held_out_words_outside_training_vocabulary(tmp_path):
    corpus = load_wikitext2(str(write_wikitext(tmp_path / "wt2")))
    valid = [corpus.words[i] for i in corpus.valid.tolist()]
    assert valid[1:4] == ["=", UNK, "="]  # "Gameplay" is not a training word: <unk>
    with pytest.raises(ValueError, match="no <unk>"):
        build_corpus({"train": ["a b"], "valid": ["a c"], "test": ["a"]})


def test_env_var_names_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(WIKITEXT_ENV, str(write_wikitext(tmp_path / "wt2")))
    assert load_wikitext2(None).train.numel() == sum(len(line.split()) + 1 for line in TRAIN)


def test_missing_files_say_where_to_put_them(tmp_path):
    write_wikitext(tmp_path / "wt2")
    (tmp_path / "wt2" / "wiki.test.tokens").unlink()
    with pytest.raises(DatasetMissing) as err:
        load_wikitext2(str(tmp_path / "wt2"))
    message = str(err.value)
    assert "wiki.test.tokens" in message and "task.data_dir" in message and WIKITEXT_ENV in message


def test_default_directory_is_under_the_data_root_where_make_data_puts_it(tmp_path, monkeypatch):
    monkeypatch.delenv(WIKITEXT_ENV, raising=False)
    monkeypatch.setenv("ONECYCLE_DATA", str(tmp_path))
    with pytest.raises(DatasetMissing) as err:
        load_wikitext2(None)
    assert str(tmp_path / "wikitext-2") in str(err.value) and "make data TASKS=awd_lstm_wt2" in str(err.value)
    write_wikitext(tmp_path / "wikitext-2")
    assert load_wikitext2(None).train.numel() == sum(len(line.split()) + 1 for line in TRAIN)


def test_batchify_cuts_the_stream_into_columns():
    data = batchify(torch.arange(23), 4)
    assert data.shape == (5, 4)
    assert data[:, 1].tolist() == [5, 6, 7, 8, 9]  # each column is a contiguous piece of the stream


def test_variable_bptt_windows_follow_the_reference_rule():
    lengths = bptt_lengths(100_000, 70, torch.Generator().manual_seed(0))
    assert sum(lengths) == 100_000 - 1  # every next-word target used once, none past the end
    body = torch.tensor(lengths[:-1], dtype=torch.float)
    assert body.min() >= 5
    half = (body < 52).float().mean().item()  # windows drawn around bptt/2 = 35
    assert 0.03 < half < 0.07
    assert abs(body[body > 52].mean().item() - 70) < 0.8  # int() truncation puts the mean near 69.5
    again = bptt_lengths(100_000, 70, torch.Generator().manual_seed(0))
    assert lengths == again
    assert bptt_lengths(100, 10, torch.Generator(), variable=False) == [10] * 9 + [9]


def test_windows_carry_targets_lr_scale_and_reset():
    data = batchify(torch.arange(400), 4)
    batches = bptt_batches(data, 10, torch.Generator().manual_seed(1))
    assert [b.reset_state for b in batches] == [True] + [False] * (len(batches) - 1)
    for b in batches:
        assert torch.equal(b.targets, b.inputs + 1)  # next token of the same column
        assert b.lr_scale == pytest.approx(b.inputs.shape[0] / 10)
    assert torch.equal(torch.cat([b.inputs for b in batches]), data[:-1])
