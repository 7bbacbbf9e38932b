"""What the grid checks once its cells are known and before any job starts: that the tuning studies'
storage opens (runners/grid/tuning.py `storage`) — else every tuned cell would launch only to fail on it,
with Optuna's or SQLAlchemy's error in its record."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from results.errors import UserError

from .search import is_tuned

# Backends whose driver takes a connect timeout: a wrong host should not hold the grid for minutes.
TIMEOUT_ARGS = {"postgresql": {"connect_timeout": 10}, "mysql": {"connect_timeout": 10}}


def storage_problem(setting: str | None) -> str | None:
    """Why `grid.tuning.storage` cannot hold the studies, or None. null and 'journal' are files under
    results_dir (its writability is checked apart); a database URL is parsed, its driver loaded and —
    but for SQLite, whose file Optuna creates — a connection opened and closed."""
    if setting is None or setting == "journal":
        return None
    import sqlalchemy
    from sqlalchemy.engine import make_url

    key = f"grid.tuning.storage={setting!r}"
    try:
        url = make_url(setting)
    except sqlalchemy.exc.ArgumentError:
        return (f"{key} is neither null (SQLite under results_dir), 'journal' nor a database URL "
                f"(dialect://user:password@host/database)")
    backend = url.get_backend_name()
    if backend == "sqlite":
        folder = Path(url.database or ".").expanduser().parent
        return None if folder.is_dir() else f"{key}: the directory {folder} does not exist"
    try:
        engine = sqlalchemy.create_engine(url, connect_args=TIMEOUT_ARGS.get(backend, {}))
    except (ImportError, sqlalchemy.exc.ArgumentError) as exc:  # no driver installed, unknown dialect
        return f"{key}: cannot load its database driver ({type(exc).__name__}: {exc})"
    try:
        with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001 — every driver has its own errors: refused, auth, no database
        return f"{key}: cannot connect ({' '.join(str(exc).split())[:300]})"
    finally:
        engine.dispose()
    return None


def check_storage(cells: list[DictConfig]) -> None:
    """Refuse the launch when a tuned cell's storage does not open (one look per distinct setting)."""
    for setting in dict.fromkeys(c.grid.tuning.storage for c in cells if is_tuned(c)):
        problem = storage_problem(setting)
        if problem:
            raise UserError(problem)
