"""Command-line overrides, checked and composed with their errors as ONE line each (the README's promise
for bad input), for both entry points: `python -m runners.train` composes through `compose_run` (Hydra's
compose API, not `hydra.main`, whose error handler prints a dozen lines and exits 1) and the grid checks
its arguments with `check_overrides` before composing its cells (runners/grid/cells.py compose_many,
which reports through `hydra_error`)."""
from __future__ import annotations

import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from results.errors import UserError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# Lines of Hydra's and OmegaConf's messages that add nothing on one line: links, the stack-trace hint,
# the schema class (the key is named already), the config search path and everything after it.
NOISE = re.compile(r"^(See https?://|Set the environment variable HYDRA_FULL_ERROR|object_type=)")


def hydra_error(exc: BaseException) -> str:
    """A Hydra or OmegaConf error as one line: its message and its cause's ("Error merging override
    task.width=wide" says what, its cause why), paragraphs joined by '; ', a list of available options
    on the same line, and the key a `full_key:` line names put first when the message does not name it."""
    parts, key = [], None
    for error in (exc, exc.__cause__):  # deeper causes repeat the message (or template it)
        if error is None:
            break
        for paragraph in str(error).split("\nConfig search path:")[0].split("\n\n"):
            lines, options = [], []
            for raw in paragraph.splitlines():
                line = raw.strip()
                if raw.startswith("\t"):  # an available option, one per line
                    options.append(line)
                elif line.startswith("full_key:"):
                    key = key or line.partition(":")[2].strip()
                elif line and not NOISE.match(line):
                    lines.append(line)
            text = " ".join(lines + [", ".join(options)] if options else lines)
            if text and text != "None" and not any(text in earlier for earlier in parts):
                parts.append(text)
    message = "; ".join(parts) or type(exc).__name__
    return message if key is None or key in message else f"{key}: {message}"


def config_groups() -> set[str]:
    return {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def check_overrides(args: list[str], groups: set[str] | None = None) -> None:
    """Each argument is a Hydra override (key=value, +key, ~key, sweeps), and a config-group choice names
    a file of its group: 'task=../task/digits_resnet' would otherwise load conf/task/digits_resnet.yaml
    under another name (and the grid look for conf/task/../task/...). Raises UserError, one line."""
    parser, groups = OverridesParser.create(), config_groups() if groups is None else groups
    for arg in args:
        try:
            override = parser.parse_override(arg)
        except HydraException as exc:
            raise UserError(f"{arg!r} is not an override (key=value): {hydra_error(exc)}") from None
        group = override.key_or_group
        if not group:
            raise UserError(f"{arg!r} has no key: an override is key=value")
        if group not in groups and not group.startswith("hydra/"):
            continue
        values = ([str(v) for v in override.sweep_string_iterator()] if override.is_sweep_override()
                  else [override.get_value_element_as_str()] if override.value() is not None else [])
        for value in values:
            if "/" in value or ".." in value:
                raise UserError(f"{group}={value}: a config choice is a name in conf/{group}/ (no '/' or "
                                f"'..'); see `ls conf/{group}`")


def resolved(cfg: DictConfig) -> DictConfig:
    """`cfg`, once each of its interpolations has resolved (raising the first that does not). The hydra
    node is left alone: its ${hydra:...} resolvers need a running Hydra."""
    for key in (k for k in cfg if k != "hydra"):
        value = cfg[key]
        if OmegaConf.is_config(value):
            OmegaConf.to_container(value, resolve=True)
    return cfg


def compose_run(args: list[str], config_name: str = "config") -> DictConfig:
    """The run's config from conf/ and `args`, as `hydra.main` would compose it, every interpolation
    resolved once (so that `epochs=${nope}` fails here, not mid-run); any problem a UserError, one line."""
    check_overrides(args, config_groups() - {"suite"})  # a run's suite is a plain name (RunConf.suite)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = resolved(compose(config_name, overrides=list(args)))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise UserError(hydra_error(exc)) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg
