"""The sdist and wheel as users get them: built with `python -m build`, the wheel installed into a fresh venv
outside the tree (its dependencies from the package index), its entry points run, and `kubectl macvtap` found
on PATH by the real kubectl (the one built for the test control plane)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from tests.harness.controlplane import binaries

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv in a temp dir (no checkout beside it) with the wheel pip-installed; returns its bin/."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    wheel = next(dist.glob("macvtapctl-*.whl"))
    subprocess.run([str(env_dir / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True)
    return env_dir / "bin"


def test_sdist_and_wheel_carry_what_users_need(dist: Path) -> None:
    wheel = next(dist.glob("macvtapctl-*-py3-none-any.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"macvtapctl/cli/__init__.py", "macvtapctl/agent/shim/macvtap.c", "macvtapctl/py.typed"} <= names
    assert not any(n.startswith("tests/") for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta and "Classifier: Topic :: System :: Networking" in meta
    assert "kubectl-macvtap = macvtapctl.cli:main" in zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    sdist = next(dist.glob("macvtapctl-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {"LICENSE", "README.md", "pyproject.toml", "macvtapctl/agent/shim/macvtap.c"} <= members


def test_the_installed_commands_run_outside_the_tree(installed: Path, tmp_path: Path) -> None:
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env={"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(tmp_path)})

    r = run(str(installed / "macvtapctl"), "--help")
    assert r.returncode == 0 and "doctor" in r.stdout and "vm" in r.stdout
    r = run(str(installed / "kubectl-macvtap"), "--help")
    assert r.returncode == 0 and "Usage: kubectl macvtap" in r.stdout
    r = run(str(installed / "macvtapctl"), "version", "--client", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["clientVersion"]["gitVersion"] == "v0.1.0"  # a wheel reports its release
    # As a kubectl plugin: the real kubectl finds kubectl-macvtap on PATH.
    kubectl = str(binaries() / "kubectl")
    r = run(kubectl, "plugin", "list")
    assert f"{installed}/kubectl-macvtap" in r.stdout, r.stdout + r.stderr
    r = run(kubectl, "macvtap", "version", "--client")
    assert r.returncode == 0 and r.stdout.startswith("Client Version: v0.1.0"), r.stdout + r.stderr
    r = run(kubectl, "macvtap", "vm", "create", "web", "--network", "dp", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["kind"] == "VirtualMachine"


def test_agent_without_a_compiled_shim_says_how_to_get_one(installed: Path, tmp_path: Path) -> None:
    env = {"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(tmp_path)}
    site = next((installed.parent / "lib").glob("python3*/site-packages"))
    r = subprocess.run([str(installed / "macvtapctl"), "agent", "--install-cni", str(tmp_path / "bin"),
                        "--install-only"], check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    assert f"cc -O2 -static -o /usr/local/lib/macvtapctl/macvtap {site}/macvtapctl/agent/shim/macvtap.c" \
        in r.stderr, r.stderr
    assert os.path.exists(f"{site}/macvtapctl/agent/shim/macvtap.c")


def test_pipx_installs_the_wheel(dist: Path, tmp_path: Path) -> None:
    """pipx (from the package index, into a venv of its own) installs the wheel with both entry points."""
    tools = tmp_path / "tools"
    venv.create(tools, with_pip=True)
    subprocess.run([str(tools / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "pipx"],
                   check=True, capture_output=True)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "PIPX_HOME": str(tmp_path / "pipx"),
           "PIPX_BIN_DIR": str(tmp_path / "bin"), "PIPX_MAN_DIR": str(tmp_path / "man")}
    wheel = next(dist.glob("macvtapctl-*.whl"))
    r = subprocess.run([str(tools / "bin" / "pipx"), "install", str(wheel)], capture_output=True, text=True,
                       env=env, check=False, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for command in ("macvtapctl", "kubectl-macvtap"):
        r = subprocess.run([str(tmp_path / "bin" / command), "version", "--client"], capture_output=True, text=True,
                           env=env, check=False, timeout=60)
        assert r.returncode == 0 and r.stdout == "Client Version: v0.1.0\n", r.stderr
    assert (tmp_path / "man" / "man1" / "macvtapctl.1").is_file()  # pipx links the wheel's man page
