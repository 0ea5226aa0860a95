"""The krew plugin: plugins/macvtap.yaml checked against krew's documented manifest format (tools/krew.py
validate) and by krew's own validator, then installed by the real krew (built from sigs.k8s.io/krew) from the
archive `make krew` builds, and run as `kubectl macvtap` through the real kubectl."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness.controlplane import binaries
from tools import krew

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def krew_bin() -> Path:
    out = subprocess.run(["bash", str(REPO / "tests" / "packaging" / "build_krew.sh")], check=True,
                         stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("krew")
    archive = krew.build_archive(out)
    manifest = out / "macvtap.yaml"
    manifest.write_text(yaml.safe_dump(krew.render(archive, archive.as_uri(), (REPO / "README.md").as_uri()),
                                       sort_keys=False))
    return archive, manifest


def test_the_manifest_follows_krews_format(built: tuple[Path, Path]) -> None:
    _archive, manifest = built
    doc = yaml.safe_load(manifest.read_text())
    assert krew.validate(doc) == []
    assert doc["spec"]["platforms"][0]["bin"] == "kubectl-macvtap"
    # The checker is not blind: each rule catches its violation.
    broken = yaml.safe_load(manifest.read_text())
    broken["spec"]["version"] = "0.1"
    broken["spec"]["platforms"][0]["sha256"] = "nothex"
    broken["spec"]["shortDescription"] = "x" * 51
    broken["spec"]["platforms"][0]["files"] = [{"from": "../etc/passwd", "to": "."}]
    assert len(krew.validate(broken)) == 4


def test_krew_validates_installs_and_kubectl_runs_the_plugin(krew_bin: Path, built: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    archive, manifest = built
    r = subprocess.run([str(krew_bin / "validate-krew-manifest"), "-manifest", str(manifest), "-skip-install"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {"KREW_ROOT": str(tmp_path / "krew"), "HOME": str(tmp_path), "KREW_NO_UPGRADE_CHECK": "1",
           "PATH": f"{tmp_path / 'krew' / 'bin'}:{binaries()}:/usr/bin:/bin"}
    r = subprocess.run([str(krew_bin / "kubectl-krew"), "install", f"--manifest={manifest}", f"--archive={archive}"],
                       capture_output=True, text=True, env=env, check=False, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["kubectl", "macvtap", "version", "--client"], capture_output=True, text=True, env=env,
                       check=False, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("Client Version: v0.1.0"), r.stdout + r.stderr
    r = subprocess.run(["kubectl", "macvtap", "vm", "create", "web", "--network", "dp"], capture_output=True,
                       text=True, env=env, check=False, timeout=60)
    assert r.returncode == 0 and "kind: VirtualMachine" in r.stdout, r.stderr
    assert os.path.islink(tmp_path / "krew" / "bin" / "kubectl-macvtap")
