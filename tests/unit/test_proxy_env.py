"""The environment's proxy, by the rules kubectl (Go's net/http) follows (kube/proxy.py), and a command
reaching its server through it (a stand-in proxy on loopback)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
import yaml

from macvtapctl.kube.proxy import from_environment
from tests.conftest import run_cli

P = "http://proxy.corp:3128"


@pytest.mark.parametrize(("server", "env", "expected"), [
    ("https://api.example.com:6443", {"HTTPS_PROXY": P}, (P, "HTTPS_PROXY")),
    ("https://api.example.com:6443", {"https_proxy": "proxy.corp:3128"}, (P, "https_proxy")),  # no scheme: http
    ("https://api.example.com:6443", {"HTTPS_PROXY": P, "https_proxy": "http://other:1"}, (P, "HTTPS_PROXY")),
    ("https://api.example.com:6443", {"HTTP_PROXY": P}, None),  # HTTP_PROXY is for http servers
    ("http://api.example.com:8080", {"HTTP_PROXY": P}, (P, "HTTP_PROXY")),
    ("https://127.0.0.1:6443", {"HTTPS_PROXY": P}, None),  # loopback: always direct
    ("https://[::1]:6443", {"HTTPS_PROXY": P}, None),
    ("https://localhost:6443", {"HTTPS_PROXY": P}, None),
    ("https://api.example.com", {"HTTPS_PROXY": P, "NO_PROXY": "*"}, None),
    ("https://api.example.com", {"HTTPS_PROXY": P, "NO_PROXY": "example.com"}, None),  # a name and subdomains
    ("https://example.com", {"HTTPS_PROXY": P, "NO_PROXY": "example.com"}, None),
    ("https://example.com", {"HTTPS_PROXY": P, "NO_PROXY": ".example.com"}, (P, "HTTPS_PROXY")),  # subdomains only
    ("https://a.example.com", {"HTTPS_PROXY": P, "NO_PROXY": "*.example.com"}, None),
    ("https://badexample.com", {"HTTPS_PROXY": P, "NO_PROXY": "example.com"}, (P, "HTTPS_PROXY")),
    ("https://api.example.com:6443", {"HTTPS_PROXY": P, "no_proxy": "foo, API.example.com:6443"}, None),
    ("https://api.example.com:6443", {"HTTPS_PROXY": P, "NO_PROXY": "api.example.com:443"}, (P, "HTTPS_PROXY")),
    ("https://api.example.com", {"HTTPS_PROXY": P, "NO_PROXY": "api.example.com:443"}, None),  # default port
    ("https://10.96.0.1:443", {"HTTPS_PROXY": P, "NO_PROXY": "10.96.0.0/12"}, None),
    ("https://10.112.0.1:443", {"HTTPS_PROXY": P, "NO_PROXY": "10.96.0.0/12"}, (P, "HTTPS_PROXY")),
    ("https://10.0.0.5:6443", {"HTTPS_PROXY": P, "NO_PROXY": "10.0.0.5"}, None),
    ("https://[fd00::5]:6443", {"HTTPS_PROXY": P, "NO_PROXY": "fd00::/64"}, None),
    ("https://[fd00::5]:6443", {"HTTPS_PROXY": P, "NO_PROXY": "[fd00::5]:6443"}, None),
    ("https://api.example.com", {}, None),
])
def test_which_proxy(server: str, env: dict[str, str], expected: tuple[str, str] | None) -> None:
    assert from_environment(server, env) == expected


def test_a_command_goes_through_the_environments_proxy(tmp_path: Path) -> None:
    """kubeconfig without proxy-url, HTTP_PROXY set: the request reaches the proxy in absolute form."""
    seen: list[bytes] = []
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        seen.append(head)
        body = json.dumps({"kind": "List", "metadata": {}, "items": []}).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://api.example.invalid:8080"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    proxy = f"http://127.0.0.1:{srv.getsockname()[1]}"
    try:
        r = run_cli("--kubeconfig", str(cfg), "nad", "list", "-A", "-o", "json",
                    env={"HTTP_PROXY": proxy, "NO_PROXY": "", "no_proxy": ""})
    finally:
        srv.close()
    assert r.exit_code == 0, r.stderr
    assert seen[0].startswith(b"GET http://api.example.invalid:8080/apis/k8s.cni.cncf.io/v1/"
                              b"network-attachment-definitions?limit=500 HTTP/1.1\r\n")


def test_an_unusable_environment_proxy_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://api.example.invalid:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    r = run_cli("--kubeconfig", str(cfg), "nad", "list", "-A", env={"HTTPS_PROXY": "socks5://127.0.0.1:1080"})
    assert r.exit_code == 1
    assert r.stderr == 'error: invalid HTTPS_PROXY "socks5://127.0.0.1:1080": not supported (only http:// and https:// proxies are)\n'
