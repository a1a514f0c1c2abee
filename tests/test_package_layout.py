"""blis_sweep's subpackages import only the layers below them (the rule each __init__ states).

A module's "unit" is its subpackage (data, go, workloads, reference, sweep, plan, report) or,
at the top level, the module itself (errors, engine, cli, ...). Every `blis_sweep.*` import,
including imports inside functions, must name a unit its importer may use.
"""
import ast
from pathlib import Path

import blis_sweep

PACKAGE = Path(blis_sweep.__file__).parent
FOUNDATION = {"errors", "atomic_io", "sim_config"}
ENGINE = FOUNDATION | {"data", "go", "workloads", "engine", "limits", "kernels"}
ALLOWED = {
    "errors": set(), "atomic_io": set(), "sim_config": {"kernels"},
    "data": {"errors", "sim_config", "data"},
    "go": {"errors", "kernels", "go"},
    "workloads": FOUNDATION | {"data", "go", "kernels", "workloads"},
    "engine": FOUNDATION | {"data", "workloads", "kernels"},
    "limits": FOUNDATION | {"engine"},
    "reference": ENGINE | {"reference"},
    "sweep": ENGINE | {"sweep"},
    "plan": ENGINE | {"sweep", "plan"},
    "report": ENGINE | {"sweep", "report"},
    "cli": ENGINE | {"reference", "sweep", "plan", "report"},
}


def unit_of(dotted: str) -> str:
    """'blis_sweep.sweep.capacity' -> 'sweep'; 'blis_sweep.engine' -> 'engine'."""
    return dotted.split(".")[1]


def imported_units(path: Path, module: str) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            units |= {unit_of(a.name) for a in node.names if a.name.startswith("blis_sweep.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "blis_sweep":
                units |= {a.name for a in node.names}
            elif node.module.startswith("blis_sweep."):
                units.add(unit_of(node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{module}: relative import; blis_sweep uses absolute imports")
    return units


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if rel.parts[1] in ("kernels", "bundled") or rel.name == "__init__" and len(rel.parts) == 2:
            continue
        yield path, ".".join(rel.parts)


def test_every_module_belongs_to_a_known_unit():
    unknown = {unit_of(m) for _, m in modules()} - set(ALLOWED)
    assert not unknown, f"modules outside the documented layers: {unknown}"


def test_imports_follow_the_layers():
    wrong = []
    for path, module in modules():
        unit = unit_of(module)
        for used in imported_units(path, module) - ALLOWED[unit] - {unit}:
            wrong.append(f"{module} imports blis_sweep.{used}")
    assert not wrong, "\n".join(wrong)


def test_each_subpackage_says_what_it_owns_and_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        if init.parent.name in ("kernels", "bundled"):
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "Owns:" in doc and "May import:" in doc, init
