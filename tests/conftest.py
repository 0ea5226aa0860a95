"""Shared fixtures: a CLI runner and the real local control plane (etcd + kube-apiserver)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.controlplane import ControlPlane, kubevirt_pins

# tests/compat runs the real upstream macvtap-cni beside the agent (`make compat`): it needs ../shared/upstream,
# so `make test` never collects it.
collect_ignore = [] if os.environ.get("MACVTAPCTL_COMPAT") == "1" else ["compat"]


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str


def need_root(what: str) -> None:
    """The root-only layers (datapath, e2e, e2e_kubevirt): fail, never skip quietly, when not root — a skipped layer
    looks like a green run — unless skipping them is asked for by name with MACVTAPCTL_SKIP_ROOT_TESTS=1."""
    if os.geteuid() == 0:
        return
    if os.environ.get("MACVTAPCTL_SKIP_ROOT_TESTS") == "1":
        pytest.skip(f"{what} need root; skipped because MACVTAPCTL_SKIP_ROOT_TESTS=1")
    pytest.fail(f"{what} need root: run them as root, or set MACVTAPCTL_SKIP_ROOT_TESTS=1 to skip them explicitly",
                pytrace=False)


def run_cli(*args: str, env: dict[str, str] | None = None, prog_name: str = "macvtapctl") -> Run:
    """Invoke the CLI in-process, stdout and stderr kept apart, like a user's terminal minus the TTY."""
    from typer.testing import CliRunner

    from macvtapctl.cli import app

    base = {"NO_COLOR": "1", "MACVTAPCTL_DEBUG": "", "KUBECONFIG": os.environ.get("KUBECONFIG", "")}
    result = CliRunner().invoke(app, list(args), env={**base, **(env or {})}, prog_name=prog_name)
    return Run(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli() -> Any:
    return run_cli


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane for the session; tests reset the KubeVirt CR they need."""
    cp = ControlPlane(tmp_path_factory.mktemp("controlplane"), kubevirt_version="v1.5.0",
                      kubevirt_pin=kubevirt_pins()[-1])
    try:
        cp.start()
    except Exception as exc:  # a broken fixture build must fail loudly, never skip
        cp.stop()
        pytest.fail(f"local control plane did not start: {exc}", pytrace=False)
    yield cp
    cp.stop()


@pytest.fixture
def admin(control_plane: ControlPlane) -> str:
    """Path of the admin kubeconfig."""
    return str(control_plane.admin_kubeconfig)


@pytest.fixture
def unprivileged(control_plane: ControlPlane) -> str:
    return str(control_plane.user_kubeconfig)


def resource_versions(cp: ControlPlane, refs: list[tuple[Any, str, str | None]]) -> dict[str, str | None]:
    """resourceVersion of each (resource, name, namespace); None when absent. Proves 'nothing was written'."""
    out: dict[str, str | None] = {}
    with cp.kube() as kube:
        for res, name, ns in refs:
            obj = kube.get_or_none(res, name, ns)
            out[f"{res.plural}/{ns}/{name}"] = obj["metadata"]["resourceVersion"] if obj else None
    return out


def vm_manifest(name: str, *flags: str) -> dict[str, Any]:
    """A VirtualMachine as `vm create` writes it (KubeVirt's admission accepts it), for tests that need one."""
    import yaml

    r = run_cli("vm", "create", name, *flags, "--offline")
    assert r.exit_code == 0, r.stderr
    return dict(yaml.safe_load(r.stdout))


def vmi_of(vm: dict[str, Any]) -> dict[str, Any]:
    """The VirtualMachineInstance virt-controller would create for a VM (architecture as virt-api's mutating
    webhook, which does not run here, would default it)."""
    import copy

    spec = copy.deepcopy(vm["spec"]["template"]["spec"])
    spec["architecture"] = "amd64"
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": vm["metadata"]["name"], "labels": vm["spec"]["template"]["metadata"]["labels"]},
            "spec": spec}


# --- What each suite spends (docs/development.md "CI"): wall time of setup, call and teardown per tests/ folder,
# fixtures included (a session's node start is counted where its first test runs), printed after every run.
_SPENT: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parts = Path(report.nodeid.split("::")[0]).parts
    suite = "/".join(parts[:2]) if len(parts) > 2 and parts[0] == "tests" else parts[0] if parts else "?"
    _SPENT[suite] = _SPENT.get(suite, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _SPENT:
        return
    terminalreporter.section("time per suite")
    for suite, seconds in sorted(_SPENT.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{suite:28} {seconds / 60:6.1f} min")
