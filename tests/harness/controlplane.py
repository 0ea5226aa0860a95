"""A real local control plane for tests and the demo: etcd + kube-apiserver on 127.0.0.1.

Built from the Go module proxy by build.sh; TLS with a throwaway CA; RBAC on; an admin and an
unprivileged user kubeconfig; the CRDs and validating admission of a pinned KubeVirt release
(tests/kubevirt), the NAD and CNAO CRDs; a KubeVirt CR with a chosen status.observedKubeVirtVersion.

    python -m tests.harness.controlplane up [--dir .devcluster] [--kubevirt-version v1.7.0] [--crds minimal]
    python -m tests.harness.controlplane down [--dir .devcluster]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.harness.paths import CONTROLPLANE_SRC, KUBEVIRT_SRC

MINIMAL_CRDS = CONTROLPLANE_SRC / "crds"
SERVICE_RANGE = "10.0.0.0/24"  # --service-cluster-ip-range
API_SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service: the first address of SERVICE_RANGE
KUBEVIRT_NAMESPACE = "kubevirt"
KUBEVIRT_NAME = "kubevirt"
UNPRIVILEGED_USER = "jane"
NODE_NAME = "macvtap-e2e"  # the real node of tests/node (make node-up)


def _pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (CONTROLPLANE_SRC / "pins.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"')
    return out


def kubevirt_pins() -> list[str]:
    """The KubeVirt releases the fixture is built for (pins.env), oldest first."""
    return _pins()["KUBEVIRT_PINS"].split()


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def kubevirt_runtime_version() -> str:
    """The KubeVirt release whose own components run on the real node (KUBEVIRT_RUNTIME_VERSION in pins.env)."""
    return _pins()["KUBEVIRT_RUNTIME_VERSION"]


def select_kubevirt(requested: str | None) -> tuple[str, str]:
    """The pinned KubeVirt to run for a requested version, and a note when it is not the same minor.

    A pin of the requested minor wins; otherwise the newest pin runs and the KubeVirt CR reports the requested
    version (status.observedKubeVirtVersion), which is what macvtapctl reads to pick its rules.
    """
    pins = kubevirt_pins()
    if requested:
        same = [p for p in pins if _minor(p) == _minor(requested)]
        if same:
            return same[-1], ""
    newest = pins[-1]
    if not requested:
        return newest, ""
    return newest, (f"no KubeVirt {requested} fixture is pinned (pinned: {', '.join(pins)}); running KubeVirt "
                    f"{newest}'s CRDs and admission with the KubeVirt CR reporting {requested}")


def kubevirt_fixture(pin: str) -> Path:
    """Build (or find cached) the KubeVirt fixture for a pin: kvfixture and the CRD files."""
    out = subprocess.run(["bash", str(KUBEVIRT_SRC / "build.sh"), pin], check=True,
                         stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def binaries() -> Path:
    """Build (or find cached) kube-apiserver, etcd and cnitool; return their directory."""
    out = subprocess.run(["bash", str(CONTROLPLANE_SRC / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def issue_client_cert(pki: Path, cn: str, orgs: tuple[str, ...], out: Path) -> None:
    """A client certificate from the harness CA (<pki>/ca.crt, ca.key): <out>.crt and <out>.key (0600); a second
    node's kubelet (CN system:node:<name>, O system:nodes)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key: Any = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([*[x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs],
                         x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    c = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=7))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
         .sign(ca_key, hashes.SHA256()))
    out.with_suffix(".crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key_file = out.with_suffix(".key")
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- PKI -----------------------------------------------------------------------------------------

def _pki(d: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def key_pem(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def cert(subject: x509.Name, key: Any, issuer: x509.Name, issuer_key: Any, *, ca: bool = False,
             san: list[x509.GeneralName] | None = None, server: bool = False) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), True)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    files: dict[str, Path] = {}

    def write(stem: str, c: x509.Certificate, k: Any) -> None:
        (d / f"{stem}.crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))
        (d / f"{stem}.key").write_bytes(key_pem(k))
        (d / f"{stem}.key").chmod(0o600)
        files[stem + ".crt"] = d / f"{stem}.crt"
        files[stem + ".key"] = d / f"{stem}.key"

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("macvtapctl-test-ca")
    write("ca", cert(ca_name, ca_key, ca_name, ca_key, ca=True), ca_key)
    import ipaddress

    srv_key = ec.generate_private_key(ec.SECP256R1())
    node_addresses = [ip] if (ip := default_route_ip()) else []
    # In-cluster clients (KubeVirt's components) reach it at the `kubernetes` Service's address and by its names.
    write("apiserver", cert(name("kube-apiserver"), srv_key, ca_name, ca_key, server=True, san=[
        x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(API_SERVICE_IP)),
        *[x509.IPAddress(ipaddress.ip_address(a)) for a in node_addresses]]), srv_key)
    # The KubeVirt fixture's admission webhook (kube-apiserver calls it at 127.0.0.1).
    wh_key = ec.generate_private_key(ec.SECP256R1())
    write("kvfixture", cert(name("kvfixture"), wh_key, ca_name, ca_key, server=True, san=[
        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), wh_key)
    for stem, cn, orgs in (("admin", "macvtapctl-admin", ("system:masters",)),
                           ("user", UNPRIVILEGED_USER, ("developers",)),
                           # kube-apiserver -> kubelet (kubectl logs/exec), and the real node's kubelet.
                           ("kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
                           ("node", f"system:node:{NODE_NAME}", ("system:nodes",))):
        k = ec.generate_private_key(ec.SECP256R1())
        write(stem, cert(name(cn, orgs), k, ca_name, ca_key), k)
    # The aggregation layer's front proxy (a CA of its own, as kubeadm makes it): kube-apiserver proxies
    # subresources.kubevirt.io to virt-api with this client certificate, and virt-api refuses to start without
    # the CA in extension-apiserver-authentication.
    fp_key = ec.generate_private_key(ec.SECP256R1())
    fp_name = name("front-proxy-ca")
    write("front-proxy-ca", cert(fp_name, fp_key, fp_name, fp_key, ca=True), fp_key)
    fpc_key = ec.generate_private_key(ec.SECP256R1())
    write("front-proxy-client", cert(name("front-proxy-client"), fpc_key, fp_name, fp_key), fpc_key)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (d / "sa.key").write_bytes(key_pem(sa))
    files["sa.key"] = d / "sa.key"
    return files


def default_route_ip() -> str | None:
    """The address on the default route's interface: what a node (and the API server it calls) is reached at."""
    with contextlib.suppress(OSError, ValueError, IndexError, KeyError, TypeError):
        out = subprocess.run(["ip", "-j", "route", "get", "1.1.1.1"], check=False, capture_output=True, text=True)
        return str(json.loads(out.stdout)[0]["prefsrc"])
    return None


def kubeconfig(server: str, ca: Path, crt: Path, key: Path, user: str) -> dict[str, Any]:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(crt), "client-key-data": b64(key)}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
    }


# --- processes -----------------------------------------------------------------------------------

def _wait(check: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; last log lines:\n{_tail(log)}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ssl.SSLError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout}s; last log lines:\n{_tail(log)}")


def _tail(log: Path, n: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class ControlPlane:
    """etcd + kube-apiserver in `workdir`. Use start()/stop(), or as a context manager."""

    def __init__(self, workdir: Path, *, kubevirt_version: str | None = "v1.5.0", crds: str = "kubevirt",
                 kubevirt_pin: str | None = None, detach: bool = False, in_cluster: bool | None = None) -> None:
        """crds: "kubevirt" (the pinned KubeVirt's CRDs and admission, see tests/kubevirt) or "minimal"
        (tests/controlplane/crds: accept any field, no admission; a named fallback the conformance tests fail).
        kubevirt_pin: which pinned KubeVirt runs (default: select_kubevirt(kubevirt_version)); the KubeVirt CR
        reports kubevirt_version either way. in_cluster (default: with crds="runtime"): pods on a node that joins
        reach the API server at the `kubernetes` Service with their ServiceAccount tokens, as in a real cluster
        (the agent follows its ConfigMap so); otherwise it listens on loopback only."""
        if crds not in ("kubevirt", "minimal", "runtime"):
            raise ValueError(f"crds must be 'kubevirt', 'minimal' or 'runtime', not {crds!r}")
        self.dir = Path(workdir).resolve()
        self.kubevirt_version = kubevirt_version
        self.crds = crds
        self.kubevirt_pin, self.kubevirt_note = ((kubevirt_pin, "") if kubevirt_pin
                                                 else select_kubevirt(kubevirt_version))
        self.fixture: Path | None = None  # the KubeVirt fixture's directory once started with crds="kubevirt"
        self.webhook_url = ""
        self.detach = detach
        self.in_cluster = crds == "runtime" if in_cluster is None else in_cluster
        self.procs: list[subprocess.Popen[bytes]] = []
        self.server = ""
        self.admin_kubeconfig = self.dir / "kubeconfig"
        self.user_kubeconfig = self.dir / "kubeconfig-unprivileged"

    # -- lifecycle --
    def start(self) -> ControlPlane:
        bins = binaries()
        if self.crds in ("kubevirt", "runtime"):
            self.fixture = kubevirt_fixture(self.kubevirt_pin)
        self.dir.mkdir(parents=True, exist_ok=True)
        pki = _pki(self.dir / "pki")
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        etcd_log = self.dir / "etcd.log"
        etcd = self._spawn([
            str(bins / "etcd"), "--name=default", f"--data-dir={self.dir / 'etcd'}", "--unsafe-no-fsync=true",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}", "--log-level=warn",
        ], etcd_log)
        _wait(lambda: json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{etcd_port}/health", timeout=2)).get("health") == "true", "etcd", etcd, etcd_log)
        api_log = self.dir / "kube-apiserver.log"
        api = self._spawn([
            str(bins / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--secure-port={api_port}", f"--cert-dir={self.dir / 'pki'}",
            f"--tls-cert-file={pki['apiserver.crt']}", f"--tls-private-key-file={pki['apiserver.key']}",
            f"--client-ca-file={pki['ca.crt']}", "--authorization-mode=RBAC",
            f"--service-account-issuer=https://127.0.0.1:{api_port}",
            f"--service-account-key-file={pki['sa.key']}", f"--service-account-signing-key-file={pki['sa.key']}",
            f"--service-cluster-ip-range={SERVICE_RANGE}", "--allow-privileged=true",
            "--enable-priority-and-fairness=false", "--profiling=false", "--v=0",
            f"--kubelet-client-certificate={pki['kubelet-client.crt']}",
            f"--kubelet-client-key={pki['kubelet-client.key']}", "--kubelet-preferred-address-types=InternalIP",
            *self._network_flags(),
        ], api_log)
        ctx = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        _wait(lambda: urllib.request.urlopen(
            f"{self.server}/readyz", context=ctx, timeout=3).status == 200, "kube-apiserver", api, api_log,
            timeout=120)
        self.admin_kubeconfig.write_text(yaml.safe_dump(
            kubeconfig(self.server, pki["ca.crt"], pki["admin.crt"], pki["admin.key"], "macvtapctl-admin")))
        self.user_kubeconfig.write_text(yaml.safe_dump(
            kubeconfig(self.server, pki["ca.crt"], pki["user.crt"], pki["user.key"], UNPRIVILEGED_USER)))
        for p in (self.admin_kubeconfig, self.user_kubeconfig):
            p.chmod(0o600)
        self.install_crds()
        if self.crds != "runtime":  # with KubeVirt's runtime, virt-operator installs its CRDs, CR status, admission
            self.reset_kubevirt(self.kubevirt_version)
            if self.fixture is not None:
                self._start_admission(pki)
        (self.dir / "state.json").write_text(json.dumps({
            "server": self.server, "pids": [p.pid for p in self.procs], "bin": str(bins), "crds": self.crds,
            "in_cluster": self.in_cluster,
            "kubevirt_pin": self.kubevirt_pin}))
        return self

    def _network_flags(self) -> list[str]:
        if self.in_cluster:
            # In-cluster clients (KubeVirt's pods) call the API server as a real cluster's do: at the `kubernetes`
            # Service, whose endpoint is the node address (tests/harness/node.py routes the Service there); the
            # ServiceAccount admission gives them their tokens; webhooks and the virt-api APIService are called
            # at their endpoints (there is no kube-proxy on this host for the API server to go through).
            ip = default_route_ip()
            if ip is None:
                raise RuntimeError("KubeVirt's runtime needs a node address: this host has no default route")
            pki = self.dir / "pki"
            return ["--bind-address=0.0.0.0", f"--advertise-address={ip}", "--enable-aggregator-routing=true",
                    f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                    f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                    f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                    "--requestheader-allowed-names=front-proxy-client", "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-"]
        # Nothing in the cluster calls the API server: loopback only, no pod tokens, no endpoints to keep.
        flags = ["--bind-address=127.0.0.1", "--disable-admission-plugins=ServiceAccount",
                 "--endpoint-reconciler-type=none"]
        # Without a default route kube-apiserver cannot pick an advertise address on its own.
        return flags if default_route_ip() else [*flags, "--advertise-address=127.0.0.1"]

    def _spawn(self, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=self.detach)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- cluster content --
    def kube(self, *, unprivileged: bool = False) -> Any:
        from macvtapctl.kube.client import Kube
        from macvtapctl.kube.options import Connection

        path = self.user_kubeconfig if unprivileged else self.admin_kubeconfig
        return Kube.connect(Connection(kubeconfig=str(path), request_timeout=30))

    def crd_files(self) -> list[Path]:
        if self.fixture is None:
            return sorted(MINIMAL_CRDS.glob("*.yaml"))
        kubevirt = [] if self.crds == "runtime" else ["kubevirt.crds.yaml"]
        return [self.fixture / f for f in (*kubevirt, "nad.crd.yaml", "cnao.crd.yaml")]

    def _start_admission(self, pki: dict[str, Path]) -> None:
        """KubeVirt's validating admission (virt-api's VM and VMI-create admitters, virt-operator's KubeVirt CR
        admitters) as a real webhook: kvfixture serves them, KubeVirt's own webhook configurations route to it."""
        assert self.fixture is not None
        port = free_port()
        self.webhook_url = f"https://127.0.0.1:{port}"
        log = self.dir / "kvfixture.log"
        proc = self._spawn([str(self.fixture / "kvfixture"), "serve", f"--kubeconfig={self.admin_kubeconfig}",
                            f"--cert={pki['kvfixture.crt']}", f"--key={pki['kvfixture.key']}",
                            f"--listen=127.0.0.1:{port}", f"--namespace={KUBEVIRT_NAMESPACE}"], log)
        ctx = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        _wait(lambda: urllib.request.urlopen(f"{self.webhook_url}/healthz", context=ctx, timeout=3).status == 200,
              "kvfixture", proc, log)
        out = subprocess.run([str(self.fixture / "kvfixture"), "webhooks", f"--url={self.webhook_url}",
                              f"--ca-file={pki['ca.crt']}"], check=True, stdout=subprocess.PIPE, text=True)
        self.webhook_configurations = [d for d in yaml.safe_load_all(out.stdout) if d]
        self._apply_webhooks()
        self._ssl = ctx

    def _apply_webhooks(self) -> None:
        from macvtapctl.kube.errors import AlreadyExistsError
        from macvtapctl.kube.resources import Resource

        vwc = Resource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                       "ValidatingWebhookConfiguration", namespaced=False)
        with self.kube() as kube:
            for doc in self.webhook_configurations:
                with contextlib.suppress(AlreadyExistsError):
                    kube.create(vwc, doc, strict=False)

    @contextlib.contextmanager
    def without_admission(self, name: str) -> Iterator[None]:
        """Lift one of KubeVirt's webhook configurations for a moment (e.g. to build a state KubeVirt's admission
        would refuse now but a cluster can still be in, such as two KubeVirt CRs created before the operator's)."""
        from macvtapctl.kube.resources import Resource

        vwc = Resource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                       "ValidatingWebhookConfiguration", namespaced=False)
        with self.kube() as kube:
            kube.delete(vwc, name)
        try:
            yield
        finally:
            self._apply_webhooks()

    def binding_check(self, vm: dict[str, Any]) -> str:
        """virt-controller's start-time check of a VM's network bindings (KubeVirt's own code, via kvfixture): the
        error it would raise before creating the VM's pod, "" when there is none."""
        if not self.webhook_url:
            raise RuntimeError("the KubeVirt fixture is not running (crds='minimal')")
        req = urllib.request.Request(f"{self.webhook_url}/binding-check", data=json.dumps(vm).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, context=self._ssl, timeout=10) as resp:
            return str(json.load(resp)["error"])

    def install_crds(self) -> None:
        from macvtapctl.kube.errors import AlreadyExistsError
        from macvtapctl.kube.resources import CRD

        with self.kube() as kube:
            names = []
            for f in self.crd_files():
                for crd in yaml.safe_load_all(f.read_text()):
                    if not crd:
                        continue
                    names.append(crd["metadata"]["name"])
                    with contextlib.suppress(AlreadyExistsError):
                        kube.create(CRD, crd, strict=False)
            deadline = time.monotonic() + 60
            for name in names:
                while True:
                    conds = (kube.get(CRD, name).get("status") or {}).get("conditions") or []
                    if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"CRD {name} not Established")
                    time.sleep(0.1)

    def has_status_subresource(self, plural_group: str) -> bool:
        from macvtapctl.kube.resources import CRD

        with self.kube() as kube:
            crd = kube.get(CRD, plural_group)
        return any("status" in (v.get("subresources") or {}) for v in crd["spec"]["versions"])

    def reset_kubevirt(self, version: str | None, spec: dict[str, Any] | None = None,
                       namespace: str = KUBEVIRT_NAMESPACE, name: str = KUBEVIRT_NAME,
                       metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """(Re)create the KubeVirt CR with the given spec and status.observedKubeVirtVersion."""
        from macvtapctl.kube.resources import KUBEVIRT, NAMESPACE

        with self.kube() as kube:
            if kube.get_or_none(NAMESPACE, namespace) is None:
                kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            if kube.get_or_none(KUBEVIRT, name, namespace) is not None:
                kube.delete(KUBEVIRT, name, namespace)
            body: dict[str, Any] = {
                "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
                "metadata": {"name": name, "namespace": namespace, **(metadata or {})},
                "spec": spec if spec is not None else {
                    "configuration": {"developerConfiguration": {"featureGates": []}}},
            }
            status = {"observedKubeVirtVersion": version, "phase": "Deployed"} if version else None
            subresource = self.has_status_subresource("kubevirts.kubevirt.io")
            if status and not subresource:
                body["status"] = status
            created = kube.create(KUBEVIRT, body, namespace, strict=False)
            if status and subresource:
                created = kube.merge_patch(KUBEVIRT, name, {"status": status}, namespace, subresource="status")
            return dict(created)


# --- make cluster-up / cluster-down ----------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def cmd_up(args: argparse.Namespace) -> int:
    d = Path(args.dir).resolve()
    state = d / "state.json"
    if state.exists():
        st = json.loads(state.read_text())
        if all(_alive(p) for p in st["pids"]):
            print(f"local control plane already running at {st['server']}; kubeconfig: {d / 'kubeconfig'}")
            return 0
        cmd_down(args)
    t0 = time.monotonic()
    runtime = args.crds == "runtime"
    cp = ControlPlane(d, kubevirt_version=args.kubevirt_version or None, crds=args.crds, detach=True,
                      kubevirt_pin=kubevirt_runtime_version() if runtime else None,
                      in_cluster=True if args.in_cluster else None)
    if cp.kubevirt_note:
        print(f"note: {cp.kubevirt_note}", file=sys.stderr)
    try:
        cp.start()
    except BaseException:
        cp.stop()
        raise
    if runtime:
        print(f"local control plane up at {cp.server} in {time.monotonic() - t0:.1f}s: ready for KubeVirt "
              f"{cp.kubevirt_pin}'s own components (make kubevirt-up installs them)")
    else:
        served = (f"KubeVirt {cp.kubevirt_pin} CRDs and admission" if cp.fixture
                  else "minimal CRDs (any field accepted, no admission)")
        print(f"local control plane up at {cp.server} in {time.monotonic() - t0:.1f}s: {served}; "
              f"KubeVirt CR {KUBEVIRT_NAMESPACE}/{KUBEVIRT_NAME} reports {args.kubevirt_version or 'no version'}")
    # kubectl (built with the control plane) on a path the README can name.
    bin_dir = d / "bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "kubectl"
    if not link.exists():
        link.symlink_to(Path(json.loads((d / "state.json").read_text())["bin"]) / "kubectl")
    print(f"export KUBECONFIG={cp.admin_kubeconfig} PATH={bin_dir}:$PATH")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    d = Path(args.dir).resolve()
    state = d / "state.json"
    if not state.exists():
        print("local control plane is not running")
        return 0
    pids = json.loads(state.read_text())["pids"]
    for pid in reversed(pids):
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    import shutil

    shutil.rmtree(d, ignore_errors=True)
    print("local control plane stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("--dir", default=".devcluster")
    up.add_argument("--kubevirt-version", default=os.environ.get("KUBEVIRT_VERSION") or kubevirt_pins()[-1],
                    help="what the KubeVirt CR reports; a pinned release also runs its own CRDs and admission")
    up.add_argument("--in-cluster", action="store_true",
                    help="pods on a node reach the API server at the `kubernetes` Service (make node-up)")
    up.add_argument("--crds", choices=("kubevirt", "minimal", "runtime"), default="kubevirt",
                    help="kubevirt: the pinned KubeVirt's CRDs and admission; minimal: accept-anything CRDs; "
                         "runtime: ready for KubeVirt's own components (make kubevirt-up), which bring theirs")
    down = sub.add_parser("down")
    down.add_argument("--dir", default=".devcluster")
    args = parser.parse_args(argv)
    return cmd_up(args) if args.cmd == "up" else cmd_down(args)


if __name__ == "__main__":
    sys.exit(main())
