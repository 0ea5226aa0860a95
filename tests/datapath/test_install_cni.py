"""`agent --install-cni`: atomic and idempotent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_install_cni_is_atomic_and_idempotent(tmp_path, shim) -> None:
    cmd = [sys.executable, "-m", "macvtapctl", "agent", "--install-cni", str(tmp_path), "--install-only",
           "--shim", str(shim)]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert first.stderr.strip() == f"{tmp_path}/macvtap installed"
    target = tmp_path / "macvtap"
    assert target.read_bytes() == shim.read_bytes() and target.stat().st_mode & 0o777 == 0o755
    inode = target.stat().st_ino
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert second.stderr.strip() == f"{tmp_path}/macvtap unchanged"
    assert target.stat().st_ino == inode  # not rewritten
    target.write_bytes(b"old version")
    third = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert third.stderr.strip() == f"{tmp_path}/macvtap installed"
    assert target.read_bytes() == shim.read_bytes() and target.stat().st_ino != inode  # replaced by rename
    assert [p.name for p in tmp_path.iterdir()] == ["macvtap"]  # no temporary files left behind


def test_uninstall_removes_only_our_shim(tmp_path, shim) -> None:
    from macvtapctl.agent import cni_bin

    cni_bin.install(shim, str(tmp_path))
    assert cni_bin.uninstall(str(tmp_path)) is True
    assert not (tmp_path / "macvtap").exists()
    (tmp_path / "macvtap").write_bytes(b"\x7fELF upstream's macvtap-cni binary")
    assert cni_bin.uninstall(str(tmp_path)) is False  # not ours: left alone
    assert (tmp_path / "macvtap").exists()
    assert cni_bin.uninstall(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("args", [["-o", "json", "agent", "check"], ["agent", "check", "-o", "json"]])
def test_agent_check_prints_json_with_the_global_flag_in_either_position(tmp_path, args: list[str]) -> None:
    conf = tmp_path / "conf"
    conf.write_text("[]")
    r = subprocess.run([sys.executable, "-m", "macvtapctl", *args, "--config-file", str(conf),
                        "--device-plugin-dir", str(tmp_path)], capture_output=True, text=True, check=False)
    assert r.returncode in (0, 8), r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"ok", "checks"} and doc["checks"]
