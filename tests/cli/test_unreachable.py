"""Documented in docs/exit-codes.md: a server whose name does not resolve is exit 7 (unreachable), in one line; and
`version` still prints the client's part when the server cannot be reached (kubectl's `version` does)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from macvtapctl.errors import ExitCode
from tests.conftest import run_cli


def _kubeconfig(tmp_path: Path) -> str:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://api.cluster.invalid:6443",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return str(cfg)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Name resolution fails as a resolver says so (no query leaves this machine)."""
    asked: list[str] = []

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_name_that_does_not_resolve_is_exit_7_in_one_line(tmp_path: Path, no_dns: list[str]) -> None:
    r = run_cli("--kubeconfig", _kubeconfig(tmp_path), "exposed")
    assert no_dns == ["api.cluster.invalid"]
    assert r.exit_code == ExitCode.UNREACHABLE, r.stderr
    assert r.stderr.splitlines() == [
        "error: cannot reach the API server at https://api.cluster.invalid:6443: name or service not known "
        "(is the cluster running? check --kubeconfig and --context)"]


def test_version_prints_the_client_part_when_the_server_fails(tmp_path: Path, no_dns: list[str]) -> None:
    r = run_cli("--kubeconfig", _kubeconfig(tmp_path), "version")
    assert r.exit_code == ExitCode.UNREACHABLE
    assert r.stdout.startswith("Client Version: v")
    assert "Server Version" not in r.stdout
    assert "name or service not known" in r.stderr
