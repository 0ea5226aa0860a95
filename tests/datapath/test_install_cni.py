"""`agent --install-cni`: atomic and idempotent."""

from __future__ import annotations

import subprocess
import sys


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
