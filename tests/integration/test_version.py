"""`version` and the error paths of the API layer, against the real local control plane."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from macvtapctl.errors import ExitCode
from tests.harness.standin import ConnectProxy


def test_version_reports_server_and_kubevirt(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.4.2")
    r = cli("--kubeconfig", admin, "version")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "Server Version: v1.37.2"
    assert lines[2] == "KubeVirt Version: v1.4.2"
    doc = json.loads(cli("--kubeconfig", admin, "version", "-o", "json").stdout)
    assert doc["serverVersion"]["gitVersion"] == "v1.37.2"
    assert doc["kubevirtVersion"] == "v1.4.2"


def test_version_with_kubevirt_cr_in_another_namespace(cli, admin, control_plane) -> None:
    from macvtapctl.kube.resources import KUBEVIRT

    with control_plane.kube() as kube:
        kube.delete(KUBEVIRT, "kubevirt", "kubevirt")
    try:
        control_plane.reset_kubevirt("v1.9.0", namespace="openshift-cnv", name="kubevirt-kubevirt-hyperconverged")
        r = cli("--kubeconfig", admin, "version", "-o", "yaml")
        assert yaml.safe_load(r.stdout)["kubevirtVersion"] == "v1.9.0"
    finally:
        with control_plane.kube() as kube:
            kube.delete(KUBEVIRT, "kubevirt-kubevirt-hyperconverged", "openshift-cnv")
        control_plane.reset_kubevirt("v1.5.0")


def test_version_without_kubevirt_cr(cli, admin, control_plane) -> None:
    from macvtapctl.kube.resources import KUBEVIRT

    with control_plane.kube() as kube:
        kube.delete(KUBEVIRT, "kubevirt", "kubevirt")
    try:
        r = cli("--kubeconfig", admin, "version")
        assert r.exit_code == 0
        assert "KubeVirt Version: not installed" in r.stdout
    finally:
        control_plane.reset_kubevirt("v1.5.0")


def test_unprivileged_user_gets_forbidden(cli, unprivileged) -> None:
    r = cli("--kubeconfig", unprivileged, "version")
    assert r.exit_code == ExitCode.FORBIDDEN
    # /version is public; the KubeVirt lookup is what RBAC denies
    assert "Server Version: v1.37.2" in r.stdout
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: forbidden: the current user cannot list kubevirts.kubevirt.io "
                               "in any namespace")
    assert "Traceback" not in r.stderr


def test_wrong_context(cli, admin) -> None:
    r = cli("--kubeconfig", admin, "--context", "nope", "version")
    assert r.exit_code == ExitCode.USAGE
    assert r.stderr == ('error: context "nope" does not exist in the kubeconfig '
                        "(available: local) (--context)\n")


def _kubeconfig_for(server: str, admin: str, tmp_path: Path) -> str:
    cfg = yaml.safe_load(Path(admin).read_text())
    cfg["clusters"][0]["cluster"]["server"] = server
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_closed_port_is_unreachable_quickly(cli, admin, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _kubeconfig_for(f"https://127.0.0.1:{port}", admin, tmp_path)
    r = cli("--kubeconfig", cfg, "--request-timeout", "5s", "version")
    assert r.exit_code == ExitCode.UNREACHABLE
    assert r.stderr == (f"error: cannot reach the API server at https://127.0.0.1:{port}: connection refused "
                        "(is the cluster running? check --kubeconfig and --context)\n")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers: only --request-timeout can end a request."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def test_request_timeout_is_honoured(cli, admin, tmp_path, silent_server) -> None:
    cfg = _kubeconfig_for(f"https://127.0.0.1:{silent_server}", admin, tmp_path)
    r = cli("--kubeconfig", cfg, "--request-timeout", "1s", "version")
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr  # the server never answers: only the timeout ends it
    assert r.stderr.startswith(f"error: request to https://127.0.0.1:{silent_server} timed out after 1s ")
    assert r.stderr.rstrip().endswith("(--request-timeout)")


def test_tls_failure_is_one_line(cli, admin, tmp_path, control_plane) -> None:
    cfg = yaml.safe_load(Path(admin).read_text())
    # Trust a CA that did not sign the server's certificate.
    cfg["clusters"][0]["cluster"]["certificate-authority-data"] = yaml.safe_load(
        Path(admin).read_text())["users"][0]["user"]["client-certificate-data"]
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(cfg))
    r = cli("--kubeconfig", str(path), "version")
    assert r.exit_code == ExitCode.UNREACHABLE
    assert r.stderr.startswith(f"error: TLS handshake with {control_plane.server} failed")
    assert r.stderr.count("\n") == 1


def _edited(admin: str, tmp_path: Path, **cluster: str) -> str:
    cfg = yaml.safe_load(Path(admin).read_text())
    cfg["clusters"][0]["cluster"].update(cluster)
    path = tmp_path / "kc-edited"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_the_kubeconfigs_proxy_url_tunnels_to_the_server(cli, admin, tmp_path, control_plane) -> None:
    proxy = ConnectProxy()
    try:
        url = proxy.url.replace("http://", "http://ops:s%3Ccret@")
        r = cli("--kubeconfig", _edited(admin, tmp_path, **{"proxy-url": url}), "version", "-o", "json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["serverVersion"]["gitVersion"] == "v1.37.2"
        target = control_plane.server.removeprefix("https://")
        assert len(proxy.heads) == 1 and proxy.heads[0].startswith(f"CONNECT {target} HTTP/1.")
        assert f"Host: {target}\r\n" in proxy.heads[0]
        assert "Proxy-Authorization: Basic b3BzOnM8Y3JldA==\r\n" in proxy.heads[0]  # "ops:s<cret"
    finally:
        proxy.close()


def test_tls_server_name_is_the_name_verified(cli, admin, tmp_path, control_plane) -> None:
    """The server is reached by address; the certificate is checked against tls-server-name."""
    r = cli("--kubeconfig", _edited(admin, tmp_path, **{"tls-server-name": "kubernetes.default"}), "version")
    assert r.exit_code == 0, r.stderr
    r = cli("--kubeconfig", _edited(admin, tmp_path, **{"tls-server-name": "api.example.invalid"}), "version")
    assert r.exit_code == ExitCode.UNREACHABLE
    assert r.stderr.startswith(f"error: TLS handshake with {control_plane.server} failed: certificate verify "
                               "failed")
