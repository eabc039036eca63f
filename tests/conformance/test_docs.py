"""The kit's documentation stays true: every hook documented and exercised, the capability matrix
generated from the declarations, every check and tolerance in docs/conformance.md."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import spikeloom as sl
from spikeloom import hookspecs
from spikeloom.registry import BackendRegistry
from spikeloom_conformance import CHECKS, PROFILES, corpus
from spikeloom_conformance.matrix import BUILTIN, backends_named, builtin_backends, render

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _hookspec_names() -> list[str]:
    tree = ast.parse(Path(hookspecs.__file__).read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(getattr(d, "id", None) == "hookspec" for d in node.decorator_list)
    ]


def test_every_hook_is_documented_and_tested():
    names = _hookspec_names()
    assert names == [n for n in dir(hookspecs) if n.startswith("spikeloom_")]
    text = (DOCS / "hooks.md").read_text()
    documented = re.findall(r"^### `(spikeloom_\w+)\(", text, flags=re.M)
    assert sorted(documented) == sorted(names)
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_docs.py")
    for name in names:
        assert name in tests, f"no test exercises the hook {name}"


def test_register_backends_hook_of_the_example_plugin():
    """The hook as a third party implements it: called with a registry, it adds its backend."""
    path = ROOT / "examples" / "third_party_backend" / "spikeloom_example_backend" / "plugin.py"
    if importlib.util.find_spec("spikeloom_example_backend") is None:
        pytest.skip("examples/third_party_backend is not installed")
    from spikeloom_example_backend import plugin

    assert Path(plugin.__file__).resolve() == path.resolve()
    registry = BackendRegistry()
    plugin.spikeloom_register_backends(registry=registry)
    assert registry.names() == ["example"]
    assert "example" in {i.name for i in sl.list_backends()}


def test_capability_matrix_is_up_to_date():
    page = (DOCS / "capabilities.md").read_text()
    named = backends_named(page)
    assert named, "docs/capabilities.md lost its generated-from marker"
    registered = builtin_backends()
    missing_here = [n for n in named if n not in registered]
    if missing_here:
        pytest.skip(f"backends {missing_here} are not registered here; cannot regenerate the page")
    assert set(registered) <= set(named), (
        f"registered backends {sorted(set(registered) - set(named))} are missing from docs/capabilities.md; "
        "run python -m spikeloom_conformance.matrix --write docs/capabilities.md"
    )
    assert page == render(named), (
        "docs/capabilities.md is stale: run python -m spikeloom_conformance.matrix --write docs/capabilities.md"
    )
    assert set(named) <= set(BUILTIN)


def test_conformance_doc_lists_every_check_case_and_tolerance():
    text = (DOCS / "conformance.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \|", text, flags=re.M)
    assert [r for r in rows if r in CHECKS] == list(CHECKS), "the check table must list every check, in order"
    for case in corpus():
        if not case.name.startswith("random_"):
            assert f"`{case.name}`" in text, case.name
    table = {}
    for line in text.splitlines():
        m = re.match(r"^\| `(\w+)`(?:, `(\w+)`| / `(\w+)`)? \| ([^|]+) \| ([^|]+) \|", line)
        if m and m.group(1) in {"step_rtol", "run_rtol", "grad_rtol", "loss_rtol", "param_rtol", "spike_margin"}:
            table[m.group(1)] = (m.group(4).strip(), m.group(5).strip())
    assert len(table) == 6
    for field, (f64, f32) in table.items():
        assert float(f64.split(" / ")[0]) == getattr(PROFILES["float64"], field), field
        assert float(f32.split(" / ")[0]) == getattr(PROFILES["float32"], field), field
    assert PROFILES["float32"].horizon == 64 and "| 64 steps |" in text


def test_docs_link_to_each_other():
    for page in ("backend-guide.md", "conformance.md", "hooks.md", "capabilities.md"):
        assert (DOCS / page).exists()
    guide = (DOCS / "backend-guide.md").read_text()
    for target in ("backends.md", "hooks.md", "conformance.md", "model.md"):
        assert f"]({target}" in guide
