"""The package's layers: the method core imports neither the launchers nor the tools, and the
launchers do not import the tools. Read from the source (every import statement, lazy ones too),
so a new module or a function-level import cannot slip past."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "solo_cjepa"
# The commands users type (python -m solo_cjepa.compare, ...) are entry points into the tools.
COMMANDS = {"compare.py", "attention.py", "export.py", "evaluate.py"}


def _imported(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _modules(layer: str):
    if layer == "core":
        return [p for p in PACKAGE.glob("*.py") if p.name not in COMMANDS]
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize(
    "layer, forbidden",
    [("core", ("solo_cjepa.launch", "solo_cjepa.tools")), ("launch", ("solo_cjepa.tools",))],
)
def test_imports_only_go_down_the_ladder(layer, forbidden):
    modules = _modules(layer)
    assert len(modules) >= 5
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules
        for name in _imported(path)
        if name.startswith(forbidden)
    ]
    assert not wrong, wrong


def test_the_checker_sees_an_upward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from solo_cjepa.tools.compare import runner\n")
    assert "solo_cjepa.tools.compare" in set(_imported(module))
