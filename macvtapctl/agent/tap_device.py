"""/dev/tapN belongs to the macvtap it is named for.

A macvtap's character device is named for its ifindex, and ifindexes are counted per network namespace, but a
kernel has one devtmpfs. Where several nodes share a kernel — KinD nodes with the host's /dev mounted, the
project's two test nodes — two macvtaps can get the same index in two namespaces: /dev/tapN then stays the first
one's device, and a pod given /dev/tapN would open the other node's macvtap (and when the first is deleted the node
goes, while the second lives on). The allocator checks every new link here and, on a clash, makes it again under
an index no node uses (measured on this kernel: tests/datapath/test_tap_device.py)."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

# Indexes taken on a clash: far above what a node's own counter reaches, spread at random so that two nodes
# re-picking at the same moment do not clash again.
FREE_INDEX_RANGE = (1 << 20, 1 << 30)
SYS_CLASS_NET = Path("/sys/class/net")


def device_number(link: str, index: int, sys_class_net: Path = SYS_CLASS_NET) -> int | None:
    """The macvtap's own char device (major:minor from sysfs, which shows the agent's namespace), or None when
    this sysfs cannot say (not this namespace's, or the link is gone)."""
    try:
        major, minor = (sys_class_net / link / "macvtap" / f"tap{index}" / "dev").read_text().split(":")
        return os.makedev(int(major), int(minor))
    except (OSError, ValueError):
        return None


def is_ours(tap_dir: str, link: str, index: int, sys_class_net: Path = SYS_CLASS_NET) -> bool:
    """Whether <tap_dir>/tap<index> is this link's device. A sysfs that cannot tell is taken as yes (the
    behaviour before this check): the clash needs a shared devtmpfs, and sysfs is how it is seen."""
    want = device_number(link, index, sys_class_net)
    if want is None:
        return True
    try:
        st = os.stat(Path(tap_dir) / f"tap{index}")
    except OSError:
        return False  # another namespace's link of the same index was deleted and took the node with it
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == want


def free_index(tap_dir: str, rng: random.Random | None = None) -> int:
    """An index whose /dev/tapN does not exist (the kernel refuses it if this namespace uses it: try another)."""
    pick = rng or random.SystemRandom()
    while True:
        index = pick.randrange(*FREE_INDEX_RANGE)
        if not (Path(tap_dir) / f"tap{index}").exists():
            return index
