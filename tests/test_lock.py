"""requirements.lock is what `make install` installs (every package, at one version, hash-checked) and
what CI tests; pyproject.toml keeps ranges for installs elsewhere. These tests fail when the two drift:
a dependency added to (or narrowed in) pyproject.toml without `make lock`, a torch pin that is not the
pair the Makefile and README name, an entry without a hash."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def lock_entries() -> list[tuple[Requirement, list[str]]]:
    """Each entry of the lock: its requirement (`name==version ; marker`) and its hashes."""
    text = re.sub(r"\\\n", " ", LOCK.read_text())  # an entry continues over backslashed lines
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()  # `# via ...` annotations; no entry holds a "#"
        if not line:
            continue
        spec, *options = re.split(r"\s+(?=--)", line)
        entries.append((Requirement(spec), [o.removeprefix("--hash=") for o in options]))
    return entries


def pins() -> dict[str, list[tuple[str, Requirement]]]:
    """name -> [(version, requirement)], one per marker (a package may be locked per platform)."""
    found: dict[str, list] = {}
    for req, _ in lock_entries():
        found.setdefault(canonicalize_name(req.name), []).append((next(iter(req.specifier)).version, req))
    return found


def declared() -> list[Requirement]:
    """What pyproject.toml asks for: runtime, the dev extra (`make test`) and the build backend."""
    project = PYPROJECT["project"]
    return [Requirement(r) for r in (*project["dependencies"], *project["optional-dependencies"]["dev"],
                                     *PYPROJECT["build-system"]["requires"])]


def test_every_entry_is_one_exact_version_with_hashes():
    entries = lock_entries()
    assert len(entries) > 50  # the whole set, transitive dependencies included
    for req, hashes in entries:
        assert [s.operator for s in req.specifier] == ["=="], req
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), req
    names = [(canonicalize_name(req.name), str(req.marker)) for req, _ in entries]
    assert len(names) == len(set(names))


def test_every_dependency_of_pyproject_is_locked_at_a_version_its_range_admits():
    locked = pins()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} is in pyproject.toml but not in requirements.lock: run `make lock`"
        for version, _ in locked[name]:
            assert req.specifier.contains(version, prereleases=True), (
                f"requirements.lock pins {name}=={version}, outside pyproject.toml's {req}: run `make lock`")


def test_the_torch_pair_is_the_one_the_makefile_and_readme_name():
    makefile = re.search(r"^TORCH_PINS := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    readme = re.search(r"torch\s+(\d[\w.+]*)\s*/\s*torchvision\s+(\d[\w.+]*)", (ROOT / "README.md").read_text())
    locked = pins()
    assert makefile == [f"torch=={locked['torch'][0][0]}", f"torchvision=={locked['torchvision'][0][0]}"]
    assert readme.groups() == (locked["torch"][0][0], locked["torchvision"][0][0])
    assert len(locked["torch"]) == len(locked["torchvision"]) == 1  # one version on every platform


def test_the_installer_and_build_backend_are_locked_too():
    """`make install` builds the project with the locked setuptools (no isolated build env of its own
    choosing) and installs with the locked pip."""
    assert {"pip", "setuptools"} <= set(pins())


def test_make_install_is_redone_from_the_lock_when_it_changes(tmp_path):
    """A stamp newer than pyproject.toml and the lock: nothing to do, unless the lock is newer (-W)."""
    if not shutil.which("make"):
        pytest.skip("no make")
    stamp = tmp_path / "installed"
    stamp.touch()
    os.utime(stamp, (4e9, 4e9))  # newer than any file of the checkout

    def dry_run(*extra: str) -> str:
        return subprocess.run(["make", "-n", "install", f"STAMP={stamp}", *extra], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout

    assert "pip install" not in dry_run()
    assert "pip install -q --require-hashes -r requirements.lock" in dry_run("-W", "requirements.lock")


def test_the_environment_under_test_is_the_lock():
    """In the repo's .venv (made by `make install`) every locked package that applies here is installed
    at its locked version: what runs the tests is what the lock says."""
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("not the repo's .venv: installed some other way")
    wrong = []
    for name, entries in pins().items():
        for version, req in entries:
            if req.marker is None or req.marker.evaluate():
                try:
                    have = metadata.version(name)
                except metadata.PackageNotFoundError:
                    have = None
                if have != version:
                    wrong.append(f"{name} {have} (locked {version})")
    assert not wrong, f"run `make install`: {', '.join(wrong)}"
