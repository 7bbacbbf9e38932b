"""`make data` keeps what is the user's where it belongs: $HF_TOKEN reaches the hub alone, placed data
has the user's umask, what a killed fetch left is cleaned (ours only, and only when no fetch holds the
item), and a destination that cannot be written, or a fetch that cannot succeed, leaves nothing behind.
Against the loopback server of test_data_fetch.py (its `internet` fixture)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from suites.data import __main__ as data_cli
from suites.data import download, hub, items
from test_data_fetch import ROOT, internet  # noqa: F401  (the fixture)

TOKEN = "hf_secret"
WIKI = "tasks=awd_lstm_wt2"


def auth_by_host(server) -> list[tuple[str, str, str | None]]:
    """(Host, path, Authorization) of every request the server received."""
    rows = []
    for path, headers in server.received:
        lower = {k.lower(): v for k, v in headers.items()}
        rows.append((lower.get("host"), path, lower.get("authorization")))
    return rows


def snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- the token ---------------------------------------------------------------------------------------

def test_the_token_is_not_sent_through_a_mirror(internet, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the fixture routes every URL through $ONECYCLE_DATA_MIRROR
    assert data_cli.main(["fetch", WIKI]) == 0
    rows = auth_by_host(internet)
    assert [path for _, path, _ in rows if "/api/" in path] and len(rows) >= 4  # listing + 3 files
    assert [auth for _, _, auth in rows] == [None] * len(rows)


def test_the_token_goes_to_hf_endpoint_but_not_to_another_host_a_listing_names(internet, monkeypatch):
    port = internet.url.rsplit(":", 1)[1]
    monkeypatch.delenv(download.MIRROR_ENV)
    monkeypatch.setenv("HF_ENDPOINT", f"{internet.url}/huggingface.co")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    internet.page_size, internet.next_host = 1, f"localhost:{port}"  # the same server by another name
    assert data_cli.main(["fetch", WIKI]) == 0
    rows = auth_by_host(internet)
    ours = [(path, auth) for host, path, auth in rows if host == f"127.0.0.1:{port}"]
    named = [(path, auth) for host, path, auth in rows if host == f"localhost:{port}"]
    assert len(ours) == 4 and {auth for _, auth in ours} == {f"Bearer {TOKEN}"}  # page 1 + 3 files
    assert len(named) == 2 and {auth for _, auth in named} == {None}  # pages 2 and 3


def test_the_token_scope(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for name in ("HF_ENDPOINT", download.MIRROR_ENV):
        monkeypatch.delenv(name, raising=False)
    sent = {"Authorization": f"Bearer {TOKEN}"}
    assert hub.token_header("https://huggingface.co/api/datasets/a/b/tree/r") == sent
    for url in ("http://huggingface.co/api/x", "https://huggingface.co:8443/x", "https://cdn.example/x",
                "https://huggingface.co.example/x"):
        assert hub.token_header(url) == {}, url
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.internal:8080/")
    assert hub.token_header("https://hub.internal:8080/api/x") == sent
    assert hub.token_header("https://hub.internal/api/x") == {}
    monkeypatch.setenv(download.MIRROR_ENV, "https://hub.internal:8080")
    assert hub.token_header("https://hub.internal:8080/api/x") == {}
    assert hub.token_header("https://huggingface.co/api/x") == {}
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv(download.MIRROR_ENV)
    assert hub.token_header("https://huggingface.co/api/x") == {}


# --- permissions and leftovers -----------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_placed_data_follows_the_umask(internet, tmp_path, umask):
    old = os.umask(umask)
    try:
        assert data_cli.main(["fetch", "tasks=awd_lstm_wt2,cifar10_wrn22"]) == 0
    finally:
        os.umask(old)
    data = tmp_path / "data"
    for name in ("wikitext-2", "cifar-10-batches-py"):
        assert oct((data / name).stat().st_mode & 0o777) == oct(0o777 & ~umask), name
    assert oct((data / "wikitext-2" / "wiki.valid.tokens").stat().st_mode & 0o777) == oct(0o666 & ~umask)


def hidden_dirs(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if p.name.startswith(".") and p.is_dir())


def test_a_build_killed_before_placing_is_cleaned_by_the_next_fetch(internet, tmp_path):
    """SIGKILL right before the rename into place: the build directory (holding the token files) stays;
    the next fetch removes it, then fetches and places the item."""
    counts = dict(items.WikiText2.published)  # the fixture's
    killer = ("import os, pathlib, signal, sys\nfrom suites.data import __main__ as cli, items\n"
              f"items.WikiText2.published = {counts!r}\nrename = pathlib.Path.rename\n"
              "def die_placing(self, target):\n"
              "    if pathlib.Path(target).name == 'wikitext-2':\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return rename(self, target)\n"
              f"pathlib.Path.rename = die_placing\nsys.exit(cli.main(['fetch', '{WIKI}']))\n")
    done = subprocess.run([sys.executable, "-c", killer], cwd=ROOT, env=dict(os.environ), timeout=120)
    assert done.returncode == -9
    data = tmp_path / "data"
    left = [name for name in hidden_dirs(data) if name != ".wikitext-2.download"]
    assert len(left) == 1 and (data / left[0] / "wiki.train.tokens").is_file()

    assert data_cli.main(["fetch", WIKI]) == 0
    assert hidden_dirs(data) == [] and (data / "wikitext-2" / "wiki.test.tokens").is_file()


def hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding an item's lock, as a fetch in progress does."""
    code = ("import filelock, sys, time\nlock = filelock.FileLock(sys.argv[1])\nlock.acquire()\n"
            "print('held', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_leftovers_are_cleaned_by_name_and_only_while_no_fetch_holds_the_item(internet, tmp_path):
    assert data_cli.main(["fetch", WIKI]) == 0
    data = tmp_path / "data"
    ours = [data / ".wikitext-2.build-x1y2z3", data / ".wikitext-2.k3j4h5g6"]  # ours, and mkdtemp's old name
    kept = [data / ".wikitext-2.download", data / ".wikitext-2.notes", data / "wikitext-2.bad-20260101-000000",
            data / ".cifar-10-batches-py.k3j4h5g6"]  # downloads, not ours, moved aside, another item's
    for path in ours + kept:
        path.mkdir()
        (path / "f").write_text("x")
    holder = hold_lock(data / ".wikitext-2.lock")
    try:
        assert data_cli.main(["fetch", WIKI]) == 0
        assert all(p.is_dir() for p in ours + kept)  # a fetch holds it: its build directory may be live
    finally:
        holder.kill()
        holder.wait()
    assert data_cli.main(["fetch", WIKI]) == 0
    assert [p for p in ours if p.exists()] == [] and all((p / "f").is_file() for p in kept)


# --- what cannot be written --------------------------------------------------------------------------

def test_a_data_root_blocked_by_a_file_is_one_error_line_and_writes_nothing(internet, tmp_path, capsys):
    """A file where a directory must go: root cannot write through that either."""
    (tmp_path / "blocker").write_text("a file\n")
    before = snapshot(tmp_path)
    for root in (tmp_path / "blocker", tmp_path / "blocker" / "data"):
        assert data_cli.main(["fetch", WIKI, f"data_root={root}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: WikiText-2")
        assert f"{tmp_path / 'blocker'} is not a directory" in err and "data_root=DIR" in err
    assert snapshot(tmp_path) == before and internet.requests == []


def cli_without_privileges(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """`python -m suites.data ARGS` as a user bound by file permissions (root, with its capabilities
    dropped: a uid of 0 alone no longer writes through a read-only directory)."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv cannot give up writing through read-only directories")
        prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    return subprocess.run([*prefix, sys.executable, "-m", "suites.data", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_read_only_data_root_is_one_error_line_and_writes_nothing(tmp_path):
    data = tmp_path / "ro"
    data.mkdir()
    env = {**os.environ, download.MIRROR_ENV: "http://127.0.0.1:9", "TORCH_HOME": str(tmp_path / "torch")}
    data.chmod(0o555)
    try:
        for root in (data, data / "sub"):
            done = cli_without_privileges(["fetch", f"data_root={root}"], env)
            assert done.returncode == 2, done.stderr
            assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
            assert f"{data} is not writable" in done.stderr
    finally:
        data.chmod(0o755)
    assert snapshot(tmp_path) == ["ro"]  # nor torch.hub's cache, fetched before this check would fail


def test_a_fetch_that_cannot_succeed_does_not_create_the_data_root(internet, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:9")  # offline: refused
    missing = tmp_path / "new" / "data"
    assert data_cli.main(["fetch", f"data_root={missing}"]) == 1  # every item of the blog suite
    assert capsys.readouterr().err.count("error:") == 4
    assert not (tmp_path / "new").exists() and not (tmp_path / "torch").exists()
