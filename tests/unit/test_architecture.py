"""The import rules of docs/architecture.md, checked on every import statement in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "macvtapctl"
PURE = ("macvtapctl.dpconfig", "macvtapctl.kubevirt", "macvtapctl.vmlint", "macvtapctl.doctor", "macvtapctl.validate",
        "macvtapctl.failures", "macvtapctl.in_use", "macvtapctl.daemonset", "macvtapctl.errors", "macvtapctl.dig", "macvtapctl.jsonmerge", "macvtapctl.yamlout",
        "macvtapctl.plugins", "macvtapctl.identity", "macvtapctl.applied", "macvtapctl.vmflags", "macvtapctl.nodes",
        "macvtapctl.migration")


def all_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def imports(path: Path) -> set[str]:
    """Every module of the project a file imports (at any depth), `from a import b` counted as a and a.b."""
    return {m for m in all_imports(path) if m.startswith("macvtapctl")}


def modules(room: str) -> list[Path]:
    return sorted((PKG / room).rglob("*.py")) if (PKG / room).is_dir() else [PKG / f"{room}.py"]


def under(names: set[str], *prefixes: str) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("room", ["kube", "ops", "manifests", "dpconfig", "kubevirt", "vmlint", "doctor", "failures",
                                  "validate", "vmflags"])
def test_nothing_below_the_command_layer_imports_it(room: str) -> None:
    for path in modules(room):
        assert not under(imports(path), "macvtapctl.cli"), path


@pytest.mark.parametrize("room", ["kube", "manifests", "dpconfig", "kubevirt", "vmlint", "doctor", "failures", "validate",
                                  "vmflags"])
def test_the_api_layer_and_the_pure_modules_know_no_use_cases(room: str) -> None:
    for path in modules(room):
        assert not under(imports(path), "macvtapctl.ops"), path


@pytest.mark.parametrize("room", ["manifests", "dpconfig", "kubevirt", "vmlint", "doctor", "failures", "validate",
                                  "plugins", "vmflags"])
def test_pure_modules_do_no_io(room: str) -> None:
    for path in modules(room):
        assert not under(imports(path), "macvtapctl.kube", "macvtapctl.agent"), path


def test_no_command_module_imports_another_verbs_module() -> None:
    shared = {"macvtapctl.cli.common", "macvtapctl.cli.settings", "macvtapctl.cli.argv",
              "macvtapctl.cli._click_compat", "macvtapctl.cli.progress", "macvtapctl.cli"}
    for path in sorted((PKG / "cli").glob("*.py")):
        if path.name == "__init__.py":
            continue
        own = f"macvtapctl.cli.{path.stem}"
        others = [m for m in under(imports(path), "macvtapctl.cli") if m not in shared and not m.startswith(own)
                  and not any(m.startswith(s + ".") and s != "macvtapctl.cli" for s in shared)]
        assert others == [], (path, others)


def test_the_admin_side_never_imports_the_agent() -> None:
    for room in ("kube", "ops", "manifests"):
        for path in modules(room):
            assert not under(imports(path), "macvtapctl.agent"), path


def test_the_checker_sees_a_violation() -> None:
    """The rules can fail: a cli import is found where one exists."""
    assert under(imports(PKG / "cli" / "setup.py"), "macvtapctl.cli")
    assert set(PURE) <= {f"macvtapctl.{p.stem}" for p in PKG.glob("*.py")}


# The import contract, in full: what each room may import of the project, and which third-party modules only some
# rooms may use. `macvtapctl.__init__` (the version) is open to all.
PURE_ROOMS = tuple(m.removeprefix("macvtapctl.") for m in PURE)
ALLOWED = {
    "kube": ("macvtapctl.kube", *(f"macvtapctl.{r}" for r in PURE_ROOMS)),  # the API layer and the pure rules
    "agent": ("macvtapctl.agent", *(f"macvtapctl.{r}" for r in PURE_ROOMS)),
    "manifests": ("macvtapctl.manifests", *(f"macvtapctl.{r}" for r in PURE_ROOMS)),
    "ops": ("macvtapctl.ops", "macvtapctl.kube", "macvtapctl.manifests", "macvtapctl.output",
            *(f"macvtapctl.{r}" for r in PURE_ROOMS)),
    # The pure modules: each other, and the manifests (pure renderers and readers of the objects they judge).
    **{r: ("macvtapctl.manifests", *(f"macvtapctl.{p}" for p in PURE_ROOMS)) for r in PURE_ROOMS},
}
# Third-party modules that do I/O or draw: the CLI's (typer, click, rich) only in cli/ and output.py; the API
# client's only in kube/; the agent's (grpc, pyroute2, prometheus_client) only in agent/.
THIRD_PARTY = {"typer": ("cli",), "click": ("cli",), "rich": ("cli", "output"),
               "kubernetes": ("kube",),
               "grpc": ("agent",), "pyroute2": ("agent",), "prometheus_client": ("agent",)}


def room_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_what_the_contract_allows(room: str) -> None:
    allowed = ALLOWED[room]
    for path in modules(room):
        ours = {m for m in imports(path) if m not in ("macvtapctl", "macvtapctl.__version__")}
        bad = sorted(m for m in ours if not any(m == a or m.startswith(a + ".") for a in allowed))
        assert bad == [], (path, bad)


def test_third_party_io_modules_stay_in_their_rooms() -> None:
    for path in sorted(PKG.rglob("*.py")):
        room = room_of(path)
        top = {m.split(".")[0] for m in all_imports(path)}
        bad = sorted(m for m in top if m in THIRD_PARTY and room not in THIRD_PARTY[m])
        assert bad == [], (path, bad)


def test_the_contract_sees_a_violation() -> None:
    """The contract can fail: the CLI imports typer and ops, which the pure rooms may not."""
    cli = set().union(*(all_imports(p) for p in modules("cli")))
    assert "typer" in {m.split(".")[0] for m in cli} and "typer" in THIRD_PARTY and "cli" in THIRD_PARTY["typer"]
    assert any(m.startswith("macvtapctl.ops") for m in cli) and not any(
        a.startswith("macvtapctl.ops") for a in ALLOWED["doctor"])


def _in_function_project_imports(path: Path) -> list[int]:
    lines = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("macvtapctl")) or (
                        isinstance(node, ast.Import) and any(a.name.startswith("macvtapctl") for a in node.names)):
                    lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("room", ["ops", "kube", *PURE_ROOMS])
def test_use_cases_the_api_layer_and_the_pure_rules_show_their_graph_at_module_level(room: str) -> None:
    """Imports of the project's own modules are at the top of each file in these rooms (only cli/ defers its
    use-cases to when a command runs — start-up — and agent/ the parts of a mode it runs)."""
    for path in modules(room):
        assert _in_function_project_imports(path) == [], path


def test_the_graph_check_sees_a_deferred_import() -> None:
    assert _in_function_project_imports(PKG / "cli" / "status.py")
