"""install --injector against the real API server, and network-resources-injector v1.9.0 itself (built unmodified
from the Go module proxy by tests/injector/build.sh) answering the API server's admission calls (issue 40).

NRI knows only the in-cluster configuration (rest.InClusterConfig: a token and CA at the fixed
/var/run/secrets/kubernetes.io/serviceaccount): it runs in a private mount namespace of its own (`unshare --mount`,
no other namespace) with a tmpfs on /run holding the token of a ServiceAccount that has exactly the ClusterRole
install --injector grants — so the test proves that role is enough. Its webhook configuration is the one install
renders, pointed at 127.0.0.1 and narrowed to this test's namespace (other tests share the control plane), and
deleted at the end.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macvtapctl.errors import ExitCode
from macvtapctl.kube import resources as r
from macvtapctl.manifests import injector as m
from macvtapctl.ops import injector as ops
from macvtapctl.rules import injector as rules
from tests.conftest import need_root
from tests.harness.controlplane import ControlPlane, binaries, free_port
from tests.harness.images import injector_webhook

NS = "nri-test"
R = "macvtap.network.kubevirt.io/dataplane"
NAD = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
       "metadata": {"name": "dataplane", "namespace": NS,
                    "annotations": {"k8s.v1.cni.cncf.io/resourceName": R}},
       "spec": {"config": '{"cniVersion": "0.3.1", "name": "dataplane", "type": "macvtap"}'}}


def serving_cert(d: Path) -> bytes:
    """A CA and a certificate for 127.0.0.1 (the API server calls the webhook by URL); returns the CA's PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nri-test-ca")])

    def build(subject: x509.Name, public: Any) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public)
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1)))

    ca = build(ca_name, ca_key.public_key()).add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256())
    cert = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), key.public_key()).add_extension(
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False).sign(
        ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    (d / "tls.crt").write_bytes(cert.public_bytes(pem))
    (d / "tls.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return ca.public_bytes(pem)


def kubectl(admin: str, *args: str) -> str:
    return subprocess.run([str(binaries() / "kubectl"), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "KUBECONFIG": admin}).stdout


def listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"network-resources-injector exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"network-resources-injector not listening after {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def nri(control_plane: ControlPlane, admin: str, tmp_path: Path) -> Iterator[Any]:
    """NRI running on 127.0.0.1 with the ServiceAccount and RBAC install --injector renders, its webhook
    registered for namespace NS only; yields a Kube. Everything it made is removed afterwards."""
    need_root("a private mount namespace for network-resources-injector's in-cluster token")
    webhook = injector_webhook()
    opts = m.InjectorOptions(namespace=NS)
    rbac = [m.service_account(opts), m.cluster_role(), m.cluster_role_binding(opts), m.role(opts),
            m.role_binding(opts)]
    hook = None
    proc = None
    with control_plane.kube() as kube:
        kube.apply(r.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for obj in rbac:
            kube.apply(ops_resource(obj), obj, obj["metadata"].get("namespace"))
        kube.apply(r.NAD, NAD, NS)
        try:
            sa = tmp_path / "sa"
            sa.mkdir()
            (sa / "token").write_text(kubectl(admin, "-n", NS, "create", "token", m.NAME, "--duration=1h"))
            shutil.copy(control_plane.dir / "pki" / "ca.crt", sa / "ca.crt")
            (sa / "namespace").write_text(NS)
            ca = serving_cert(tmp_path)
            port, health = free_port(), free_port()
            log = tmp_path / "nri.log"
            # A tmpfs on /run in its own mount namespace: /var/run/secrets/... exists for it alone.
            script = ('mount -t tmpfs tmpfs /run && d=/run/secrets/kubernetes.io/serviceaccount && mkdir -p "$d" '
                      f'&& cp {sa}/* "$d"/ && exec "$@"')
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "nri", str(webhook),
                     "-bind-address=127.0.0.1", f"-port={port}", f"-health-check-port={health}",
                     f"-tls-cert-file={tmp_path / 'tls.crt'}", f"-tls-private-key-file={tmp_path / 'tls.key'}",
                     "-insecure", "-logtostderr"],
                    stdout=out, stderr=subprocess.STDOUT,
                    env={**os.environ, "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                         "KUBERNETES_SERVICE_PORT": control_plane.server.rsplit(":", 1)[1], "NAMESPACE": NS})
            listening(port, proc, log)
            hook = m.webhook_configuration(opts, ca, url=f"https://127.0.0.1:{port}/mutate")
            hook["webhooks"][0]["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": NS}}
            kube.apply(r.MUTATING_WEBHOOK_CONFIGURATION, hook)
            yield kube
        finally:
            if hook is not None:  # first: a webhook left behind would mutate (or refuse) other tests' pods
                kube.delete(r.MUTATING_WEBHOOK_CONFIGURATION, m.NAME)
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
            for obj in reversed(rbac):
                if obj["kind"].startswith("Cluster"):
                    kube.delete(ops_resource(obj), obj["metadata"]["name"])
            kube.delete(r.NAMESPACE, NS)


def ops_resource(obj: dict[str, Any]) -> r.Resource:
    return {"ServiceAccount": r.SERVICE_ACCOUNT, "ClusterRole": r.CLUSTER_ROLE,
            "ClusterRoleBinding": r.CLUSTER_ROLE_BINDING, "Role": r.ROLE, "RoleBinding": r.ROLE_BINDING}[obj["kind"]]


def dry_run(kube: Any, pod: dict[str, Any]) -> dict[str, Any]:
    from macvtapctl.kube.options import DryRun

    return dict(kube.create(r.POD, pod, NS, dry_run=DryRun.SERVER))


def pod(annotations: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    p = rules.probe_pod(NS, "dataplane", NS)
    p["metadata"]["annotations"] = annotations or {}
    if limits:
        p["spec"]["containers"][0]["resources"] = {"limits": limits}
    return p


def eventually(check: Any, timeout: float = 30) -> Any:
    """NRI's NAD informer and the API server's webhook client settle within seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def test_nri_adds_the_request_once_and_only_to_pods_that_ask(nri: Any) -> None:
    asking = {rules.NETWORKS_ANNOTATION: f"{NS}/dataplane"}

    def injected() -> dict[str, Any]:
        got = dry_run(nri, pod(asking))
        assert got["spec"]["containers"][0]["resources"]["limits"] == {R: "1"}, got["spec"]["containers"]
        return got

    got = eventually(injected)
    assert got["spec"]["containers"][0]["resources"]["requests"] == {R: "1"}
    unrelated = dry_run(nri, pod())
    assert not unrelated["spec"]["containers"][0].get("resources"), unrelated["spec"]["containers"]
    already = dry_run(nri, pod(asking, limits={R: "1"}))
    assert rules.requested(already, R) == 1 and already["spec"]["containers"][0]["resources"]["limits"] == {R: "1"}
    proof = ops.prove(nri, [NAD])
    assert proof.verified, proof
    assert proof.nad == f"{NS}/dataplane"


def test_the_proof_says_missing_without_an_injector(control_plane: ControlPlane) -> None:
    nad = {**NAD, "metadata": {**NAD["metadata"], "namespace": "default"}}
    with control_plane.kube() as kube:
        kube.apply(r.NAD, nad, "default")
        try:
            proof = ops.prove(kube, [nad])
        finally:
            kube.delete(r.NAD, "dataplane", "default")
    assert proof.state == rules.MISSING and R in proof.detail, proof


def test_install_injector_applies_once_refuses_a_second_injector_and_is_removed(cli: Any, admin: str,
                                                                             control_plane: ControlPlane) -> None:
    from macvtapctl.kube.options import DryRun
    from tests.conftest import run_cli

    args = ("--kubeconfig", admin, "install", "--injector", "--image", "registry.example/agent:v1", "-n", "nri-inst")
    with control_plane.kube() as kube:
        try:
            first = run_cli(*args)
            assert first.exit_code == 0, first.stderr
            assert "mutatingwebhookconfiguration.admissionregistration.k8s.io/macvtapctl-injector created" in \
                first.stderr
            secret = kube.get(r.SECRET, m.SECRET_NAME, "nri-inst")
            again = run_cli(*args)
            assert again.exit_code == 0, again.stderr
            lines = [ln for ln in again.stderr.splitlines() if "macvtapctl-injector" in ln]
            assert lines and all(ln.endswith("unchanged") for ln in lines), again.stderr
            assert kube.get(r.SECRET, m.SECRET_NAME, "nri-inst")["data"] == secret["data"]  # the certificate kept
            shown = run_cli(*args, "--dry-run=server", "-o", "yaml")
            key = secret["data"]["tls.key"]
            assert shown.exit_code == 0 and "tls.crt:" in shown.stdout, shown.stderr
            assert "tls.key:" not in shown.stdout and key not in shown.stdout and key not in shown.stderr
        finally:
            ops.remove(kube, _Quiet(), DryRun.NONE, "nri-inst")  # the webhook first: nothing serves it here
        assert kube.get_or_none(r.MUTATING_WEBHOOK_CONFIGURATION, m.NAME) is None
        assert kube.get_or_none(r.CLUSTER_ROLE, m.NAME) is None
        other = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                 "metadata": {"name": "network-resources-injector-config"}, "webhooks": []}
        kube.apply(r.MUTATING_WEBHOOK_CONFIGURATION, other)
        try:
            refused = run_cli(*args)
        finally:
            kube.delete(r.MUTATING_WEBHOOK_CONFIGURATION, "network-resources-injector-config")
        assert kube.get_or_none(r.MUTATING_WEBHOOK_CONFIGURATION, m.NAME) is None  # nothing was written
        # The agent's objects too (other tests of this control plane refuse a second agent); no namespace
        # controller runs here, so deleting the namespace alone would leave them.
        from macvtapctl.manifests import agent as agentm

        for obj in reversed(agentm.objects(agentm.InstallOptions(namespace="nri-inst"))):
            res, name = r.of(obj), obj["metadata"]["name"]
            if obj["kind"] != "Namespace" and kube.get_or_none(res, name, "nri-inst") is not None:
                kube.delete(res, name, "nri-inst")
        kubectl(admin, "delete", "namespace", "nri-inst", "--wait=false")
    assert refused.exit_code == ExitCode.PRECONDITION, refused.stderr
    assert "mutatingwebhookconfiguration/network-resources-injector-config" in refused.stderr


class _Quiet:
    def status(self, label: str, operation: str, suffix: str = "") -> None: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...
