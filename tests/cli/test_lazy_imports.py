"""Start-up stays cheap: --help and offline commands load no kubernetes, pyroute2, grpc, nor even ssl, http and
urllib3; commands that connect load urllib3 (kube/wire.py), ssl and http.client, and not the `kubernetes`
package."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("kubernetes", "pyroute2", "grpc", "urllib3", "prometheus_client", "ssl", "http")

PROBE = """
import json, sys
from macvtapctl.cli import app
try:
    app(prog_name="macvtapctl", args=sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["version", "--client"], ["version", "--client", "-o", "yaml"],
                                  ["version", "--help"], ["vm", "create", "web", "--network", "dp", "--mac", "auto"],
                                  ["vm", "create", "w", "--network", "dp", "--count", "5", "-o", "json"],
                                  ["rbac"], ["vm", "create", "--help"], ["agent", "--help"]])
def test_no_heavy_imports(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), *args], capture_output=True, text=True,
                          check=False)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] == 0
    assert report["heavy"] == []


def test_probe_detects_heavy_imports(tmp_path) -> None:
    """The probe itself must be able to fail: a command that connects loads urllib3, ssl and http.client — and,
    for a kubeconfig with a token or certificates, not the `kubernetes` package (0.45 s of imports;
    kube/transport.py)."""
    import yaml

    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), "--kubeconfig", str(cfg), "version"],
                          capture_output=True, text=True, check=False)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] != 0 and report["heavy"] == ["http", "ssl", "urllib3"]
