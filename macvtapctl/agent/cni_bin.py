"""Installing the static CNI shim into the node's CNI bin dir: atomic and idempotent."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

PLUGIN_NAME = "macvtap"
SHIM_MARKER = b"/run/macvtapctl/"  # the shim's default socket path: every build of our shim carries it


def find_shim(explicit: str | None = None) -> Path:
    """The compiled shim: --shim, $MACVTAPCTL_SHIM, next to this package (make shim), or the image's copy."""
    candidates = [explicit, os.environ.get("MACVTAPCTL_SHIM"), str(Path(__file__).parent / "shim" / "macvtap"),
                  "/usr/local/lib/macvtapctl/macvtap"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    source = Path(__file__).parent / "shim" / "macvtap.c"
    raise FileNotFoundError(
        "the CNI shim binary was not found: the agent image carries it; from a checkout run `make shim`; from a "
        f"wheel compile its source: cc -O2 -static -o /usr/local/lib/macvtapctl/macvtap {source} (or pass --shim)")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install(shim: Path, bin_dir: str) -> bool:
    """Copy the shim to BIN_DIR/macvtap via a temp file + rename. Returns False when already identical."""
    target = Path(bin_dir) / PLUGIN_NAME
    if target.is_file() and _digest(target) == _digest(shim) and os.access(target, os.X_OK):
        return False
    Path(bin_dir).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".macvtap.", dir=bin_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(shim.read_bytes())
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)  # atomic: the runtime never executes a half-written plugin
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def uninstall(bin_dir: str) -> bool:
    """Remove BIN_DIR/macvtap if it is our shim (any version); upstream's binary is left alone. True if removed."""
    target = Path(bin_dir) / PLUGIN_NAME
    try:
        ours = SHIM_MARKER in target.read_bytes()
    except FileNotFoundError:
        return False
    if not ours:
        return False
    target.unlink(missing_ok=True)
    return True
