"""Dependencies inside ``lifelong`` point one way: no module imports from a package above
its own (docs/extending.md, "Where code goes"). Checked on the source with ``ast``, so an
import inside a function counts too."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lifelong"

# Top-level module or package of lifelong -> its level; a module may import from its own
# level and below. Every module must be listed: a new one has to say where it belongs.
LEVELS = {
    "__init__": 0,
    "checks": 0,
    "atomic": 0,
    "layers": 0,
    "optim": 0,
    "data": 0,
    "models": 1,
    "metrics": 1,
    "regularizers": 1,
    "plugins": 1,
    "parallel": 1,
    "config": 2,
    "config_checks": 2,
    "experiment": 2,
    "training": 3,
    "cli": 4,
    "__main__": 4,
}


def top_level(path: Path) -> str:
    """The top-level module or package of lifelong that ``path`` belongs to."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported_top_levels(path: Path, source: str | None = None) -> set[str]:
    """The top-level parts of lifelong that ``path`` (its text, or ``source``) imports,
    absolutely or relatively."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]  # its package
    if path.name == "__init__.py":
        package = path.relative_to(PACKAGE.parent).parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb node.level - 1 packages up from this one
                base = list(package[: len(package) - (node.level - 1)])
                module = base + (node.module.split(".") if node.module else [])
                # "from . import x" / "from .. import x": x is the module imported
                names = [module + [a.name] for a in node.names] if not node.module else [module]
            else:
                names = [node.module.split(".")] if node.module else []
        else:
            continue
        for parts in names:
            if parts[0] == "lifelong" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_has_a_level():
    tops = {top_level(p) for p in PACKAGE.rglob("*.py")}
    assert tops - set(LEVELS) == set(), "give these a level in LEVELS"


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_imports_from_a_level_above(path):
    own = top_level(path)
    above = {t for t in imported_top_levels(path) if LEVELS.get(t, 99) > LEVELS[own]}
    assert not above, f"{path.relative_to(PACKAGE)} (level {LEVELS[own]}) imports {above}"


def test_the_checker_sees_relative_nested_and_absolute_imports():
    """The checker itself, on hand-written sources whose imports are known."""
    source = (
        "import torch\n"
        "from . import staged\n"
        "from .peer import PEER\n"
        "def f():\n"
        "    from ..training import run\n"
        "    import lifelong.cli\n"
        "    from .. import config\n"
    )
    found = imported_top_levels(PACKAGE / "layers" / "probe.py", source)
    assert found == {"layers", "training", "cli", "config"}
    init = imported_top_levels(PACKAGE / "layers" / "__init__.py", "from .peer import PEER\n")
    assert init == {"layers"}
