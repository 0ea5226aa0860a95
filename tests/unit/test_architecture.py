"""The import rules of docs/architecture.md, checked on every import statement in the package: one row per folder,
so a new module is checked by where it sits."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "macvtapctl"
ROOT = "."  # the package's own folder: the shared leaves below, output.py, vmflags.py, the entry points

# The modules at the root, all of them: a new module goes into a room (rules/ when it judges objects).
# The leaves import nothing of the project but each other; every room may import them.
LEAVES = ("errors", "dig", "identity", "jsonmerge", "yamlout", "validate")
ROOT_MODULES = {"__init__", "__main__", "output", "vmflags", *LEAVES}

# The import contract, in full: folder -> the project's folders and root modules its modules may import, besides
# their own folder and the leaves. `macvtapctl` (the version) is open to all.
CONTRACT: dict[str, tuple[str, ...]] = {
    "cli": ("ops", "kube", "manifests", "rules", "agent", "output", "vmflags"),  # the agent only to run it
    "ops": ("kube", "manifests", "rules", "output"),  # use-cases: the API layer, renderers, rules; never cli/
    "kube": ("rules",),  # the only door to the API server: its own rooms and the rules it writes by
    "manifests": ("rules",),  # pure renderers of what the rules define
    "rules": (),  # the pure rules (rules/doctor/ too): each other and the leaves, nothing that does I/O
    "agent": ("rules",),  # the node agent; the admin side never imports it
    ROOT: ("manifests", "cli"),  # vmflags reads flags into manifests/vm.py's pieces; __main__ runs the CLI
}
# Third-party modules that do I/O or draw: the CLI's (typer, click, rich) only in cli/ and output.py; the API
# client's only in kube/; the agent's (grpc, pyroute2, prometheus_client) only in agent/.
THIRD_PARTY = {"typer": ("cli",), "click": ("cli",), "rich": ("cli", "output.py"),
               "kubernetes": ("kube",),
               "grpc": ("agent",), "pyroute2": ("agent",), "prometheus_client": ("agent",)}


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


def folder_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else ROOT


def modules(folder: str) -> list[Path]:
    return sorted(PKG.glob("*.py")) if folder == ROOT else sorted((PKG / folder).rglob("*.py"))


def dotted(name: str) -> str:
    """A contract entry as a module prefix: a folder or a root module."""
    return "macvtapctl" if name == ROOT else f"macvtapctl.{name}"


def allowed(folder: str) -> tuple[str, ...]:
    """Module prefixes a folder's files may import. At the root, `macvtapctl.x` names a root module x, so the
    folder itself is not a prefix there: only the leaves and the row's entries."""
    own = () if folder == ROOT else (dotted(folder),)
    return (*own, *(f"macvtapctl.{m}" for m in LEAVES), *(dotted(n) for n in CONTRACT[folder]))


def violations(folder: str, names: set[str]) -> list[str]:
    """The project imports that a folder's row does not allow."""
    ours = {m for m in names if m not in ("macvtapctl", "macvtapctl.__version__")}
    return sorted(m for m in ours if not any(m == a or m.startswith(a + ".") for a in allowed(folder)))


def test_every_folder_has_a_row_and_the_root_holds_only_its_modules() -> None:
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(CONTRACT) - {ROOT}
    assert {p.stem for p in PKG.glob("*.py")} == ROOT_MODULES


@pytest.mark.parametrize("folder", sorted(CONTRACT))
def test_each_folder_imports_only_what_its_row_allows(folder: str) -> None:
    for path in modules(folder):
        assert violations(folder, imports(path)) == [], path


def test_the_leaves_import_only_leaves() -> None:
    for leaf in LEAVES:
        bad = [m for m in imports(PKG / f"{leaf}.py") if not any(
            m == f"macvtapctl.{x}" or m.startswith(f"macvtapctl.{x}.") for x in LEAVES)]
        assert bad == [], (leaf, bad)


def test_no_command_module_imports_another_verbs_module() -> None:
    shared = {"macvtapctl.cli.common", "macvtapctl.cli.settings", "macvtapctl.cli.argv",
              "macvtapctl.cli._click_compat", "macvtapctl.cli.progress", "macvtapctl.cli"}
    for path in sorted((PKG / "cli").glob("*.py")):
        if path.name == "__init__.py":
            continue
        own = f"macvtapctl.cli.{path.stem}"
        others = [m for m in imports(path) if m.startswith("macvtapctl.cli") and m not in shared
                  and not m.startswith(own) and not any(m.startswith(s + ".") and s != "macvtapctl.cli" for s in shared)]
        assert others == [], (path, others)


def test_third_party_io_modules_stay_in_their_rooms() -> None:
    for path in sorted(PKG.rglob("*.py")):
        where = folder_of(path) if folder_of(path) != ROOT else path.name
        top = {m.split(".")[0] for m in all_imports(path)}
        bad = sorted(m for m in top if m in THIRD_PARTY and where not in THIRD_PARTY[m])
        assert bad == [], (path, bad)


def test_the_contract_sees_a_violation() -> None:
    """The contract can fail: a rule that reads the cluster or prints, a renderer that calls a use-case, the agent
    in a use-case, a root module beyond the leaves; and the CLI does import typer, which only it may."""
    assert violations("rules", {"macvtapctl.kube.client", "macvtapctl.output", "macvtapctl.rules.nodes"}) == [
        "macvtapctl.kube.client", "macvtapctl.output"]
    assert violations("manifests", {"macvtapctl.ops.install"}) == ["macvtapctl.ops.install"]
    assert violations("ops", {"macvtapctl.agent.check", "macvtapctl.cli.common"}) == [
        "macvtapctl.agent.check", "macvtapctl.cli.common"]
    assert violations(ROOT, {"macvtapctl.output", "macvtapctl.ops"}) == ["macvtapctl.ops", "macvtapctl.output"]
    cli = set().union(*(all_imports(p) for p in modules("cli")))
    assert "typer" in {m.split(".")[0] for m in cli} and "cli" in THIRD_PARTY["typer"]


def _in_function_project_imports(path: Path) -> list[int]:
    lines = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("macvtapctl")) or (
                        isinstance(node, ast.Import) and any(a.name.startswith("macvtapctl") for a in node.names)):
                    lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("folder", ["ops", "kube", "manifests", "rules", ROOT])
def test_use_cases_the_api_layer_and_the_rules_show_their_graph_at_module_level(folder: str) -> None:
    """Imports of the project's own modules are at the top of each file in these folders (only cli/ defers its
    use-cases to when a command runs — start-up — and agent/ the parts of a mode it runs)."""
    for path in modules(folder):
        assert _in_function_project_imports(path) == [], path


def test_the_graph_check_sees_a_deferred_import() -> None:
    assert _in_function_project_imports(PKG / "cli" / "status.py")
