"""The layers: results/ at the bottom (no torch), suites/ (the task contract) above it, runners/ on top;
report/ reads results/ only (its own test). Checked on the source with `ast`, so nothing is imported."""
import ast
from pathlib import Path

import pytest

from conftest import ROOT


def imported_packages(path: Path) -> set[str]:
    """Top-level package of every absolute import in `path`, wherever in the module it is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def offenders(package: str, forbidden: set[str]) -> dict[str, list[str]]:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}/"
    found = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & forbidden) for p in modules}
    return {path: bad for path, bad in found.items() if bad}


def test_suites_never_import_runners():
    # The task contract lives in suites/base.py; the engine imports it, never the other way round.
    assert offenders("suites", {"runners"}) == {}


def test_results_is_the_torch_free_bottom_layer():
    # The report builds on any machine from results/ alone, and every layer may import it.
    assert offenders("results", {"torch", "runners", "suites", "report"}) == {}


@pytest.mark.parametrize("implementer,protocol", [
    ("suites.vision.resnet_head:BodyHead", "suites.base:NamedParamGroups"),
    ("suites.digits:SmallResNet", "suites.base:NamedParamGroups"),
    ("suites.text.data:TextBatch", "suites.base:ScaledBatch"),
    ("suites.text.tasks:LanguageModelTask", "suites.base:FinalMetrics"),
    ("runners.ntasgd:NTASGD", "runners.optimizers:OptimizerEpochEnd"),
    ("runners.ntasgd:NTASGD", "runners.optimizers:EvaluationWeights"),
    ("runners.schedule_free:AdamWScheduleFree", "runners.optimizers:EvaluationWeights"),
    ("runners.schedule_free:AdamWScheduleFree", "runners.optimizers:RefreshesBatchNorm"),
    ("runners.muon:MuonAdamW", "runners.optimizers:SplitsIOParams"),
])
def test_optional_members_are_declared_as_implemented(implementer, protocol):
    """Each optional member the engine reads (runners/capabilities.py) is declared as a Protocol — a
    task's in suites/base.py, an optimizer's in runners/optimizers.py — under the name its implementer
    uses, so the declarations cannot drift from the code."""
    import importlib

    def load(path):
        module, name = path.split(":")
        return getattr(importlib.import_module(module), name)

    cls, proto = load(implementer), load(protocol)
    members = set(getattr(proto, "__annotations__", {})) | {k for k in vars(proto) if not k.startswith("_")}
    missing = {m for m in members if not hasattr(cls, m) and m not in getattr(cls, "__dataclass_fields__", {})}
    assert members and not missing, f"{implementer} lacks {protocol} member(s) {sorted(missing)}"
