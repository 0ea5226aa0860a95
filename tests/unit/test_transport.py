"""Connecting without the `kubernetes` package: kubeconfig credentials and TLS material, the pod's service account,
and the library fallback for exec plugins. (A real API server over TLS with client certificates: every
integration test.)"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from macvtapctl.errors import MacvtapctlError
from macvtapctl.kube import transport
from macvtapctl.kube.options import Connection


def _pem_pair() -> tuple[bytes, bytes]:
    """A self-signed certificate and its key (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _config(cluster: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}


def _auth(ep: transport.Endpoint) -> dict[str, str]:
    return ep.credentials.headers()[0]


def _write(path: Path, doc: dict[str, Any]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_inline_data_token_and_a_usable_ssl_context(tmp_path: Path) -> None:
    cert, key = _pem_pair()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    path = _write(tmp_path / "config", _config(
        {"server": "https://10.0.0.1:6443/", "certificate-authority-data": b64(cert), "tls-server-name": "api"},
        {"token": "s3cret", "client-certificate-data": b64(cert), "client-key-data": b64(key)}))
    ep = transport.endpoint(Connection(kubeconfig=path))
    assert (ep.server, ep.ca, ep.cert, ep.key, ep.tls_server_name) == (
        "https://10.0.0.1:6443", cert, cert, key, "api")
    assert _auth(ep) == {"Authorization": "Bearer s3cret"}
    ctx = transport.ssl_context(ep)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.get_ca_certs()[0]["subject"] == ((("commonName", "test"),),)
    assert list(tmp_path.glob("**/client.key")) == []  # the key written for ssl is gone again


def test_relative_paths_are_relative_to_the_file_that_names_them(tmp_path: Path, monkeypatch) -> None:
    cert, _key = _pem_pair()
    (tmp_path / "a" / "pki").mkdir(parents=True)
    (tmp_path / "a" / "pki" / "ca.crt").write_bytes(cert)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tok").write_text("from-file\n")
    first = _write(tmp_path / "a" / "config", {**_config({"server": "https://x", "certificate-authority":
                                                          "pki/ca.crt"}, {}), "users": []})
    second = _write(tmp_path / "b" / "config", {"users": [{"name": "u", "user": {"tokenFile": "tok"}}]})
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    monkeypatch.chdir(tmp_path)
    ep = transport.endpoint(Connection())
    assert ep.ca == cert and _auth(ep) == {"Authorization": "Bearer from-file"}


def test_in_cluster(tmp_path: Path, monkeypatch) -> None:
    cert, _ = _pem_pair()
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(cert)
    monkeypatch.setattr(transport, "SERVICE_ACCOUNT", tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    ep = transport.endpoint(Connection())
    assert (ep.server, ep.ca, _auth(ep)) == ("https://[fd00::1]:443", cert, {"Authorization": "Bearer sa-token"})
    (tmp_path / "token").write_text("rotated")  # the kubelet rotates it; read again after client-go's minute
    assert _auth(ep) == {"Authorization": "Bearer sa-token"}
    monkeypatch.setattr(transport, "TOKEN_FILE_PERIOD", 0.0)
    assert _auth(ep) == {"Authorization": "Bearer rotated"}


def test_an_exec_plugin_is_run_once_and_its_token_sent(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text('import json; print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", '
                      '"kind": "ExecCredential", "status": {"token": "from-exec"}}))\n')
    path = _write(tmp_path / "config", _config({"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True},
                                               {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                                         "command": sys.executable, "args": [str(plugin)],
                                                         "interactiveMode": "Never"}}))
    ep = transport.endpoint(Connection(kubeconfig=path))
    assert ep.server == "https://10.0.0.1:6443" and ep.insecure
    assert _auth(ep) == {"Authorization": "Bearer from-exec"}


@pytest.mark.parametrize(("cluster", "user", "needle"), [
    ({}, {}, 'no server found for cluster "c"'),
    ({"server": "https://x", "certificate-authority-data": "%%%"}, {}, "certificate-authority-data is not base64"),
    ({"server": "https://x", "certificate-authority": "/nonexistent/ca.crt"}, {}, 'unable to read certificate-authority "/nonexistent/ca.crt" for cluster "c"'),
])
def test_bad_kubeconfigs_are_one_line(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any],
                                      needle: str) -> None:
    path = _write(tmp_path / "config", _config(cluster, user))
    with pytest.raises(MacvtapctlError, match=needle):
        transport.endpoint(Connection(kubeconfig=path))


def test_a_context_naming_a_missing_cluster(tmp_path: Path) -> None:
    doc = _config({"server": "https://x"}, {})
    doc["clusters"] = []
    with pytest.raises(MacvtapctlError, match='cluster "c" is not defined'):
        transport.endpoint(Connection(kubeconfig=_write(tmp_path / "config", doc)))


def test_a_server_without_a_scheme_is_plain_http_without_credentials_as_kubectl_reads_it(tmp_path: Path) -> None:
    """clientcmd decides TLS before it merges the CA: `host:port` is http, and gets no token (kubectl#744; the
    corpus in tests/integration/test_kubeconfig_corpus.py shows kubectl doing so)."""
    path = _write(tmp_path / "config", _config({"server": "10.0.0.1:6443"}, {"token": "t"}))
    ep = transport.endpoint(Connection(kubeconfig=path))
    assert (ep.server, ep.tls, _auth(ep)) == ("http://10.0.0.1:6443", False, {})


def test_a_server_that_is_not_a_url_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "config", _config({"server": "ftp://10.0.0.1"}, {"token": "t"}))
    with pytest.raises(MacvtapctlError) as err:
        transport.endpoint(Connection(kubeconfig=path))
    assert str(err.value) == 'invalid kubeconfig: server "ftp://10.0.0.1" is not an http or https URL'
