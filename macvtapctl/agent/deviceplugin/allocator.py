"""Allocate: (re)create the temporary macvtap for a device ID on its lower device (host netns, awaited on the
event loop)."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

from macvtapctl.agent import tap_device
from macvtapctl.agent.link_name import temporary_link_name
from macvtapctl.agent.link_registry import LinkRegistry
from macvtapctl.agent.netlink import NetlinkError
from macvtapctl.agent.netlink.awaited import AwaitedNetlink
from macvtapctl.rules.dpconfig import Entry

log = logging.getLogger(__name__)
FREE_INDEX_TRIES = 5


class LowerDeviceMissing(Exception):
    pass


class TapDeviceClash(Exception):
    """No index gave this node's macvtap a /dev/tapN of its own."""


LowerLookup = Callable[[str], tuple[int, int] | None]  # name -> (ifindex, txqlen), from the link watcher


def make_allocator(registry: LinkRegistry, tap_dir: str = "/dev",
                   lower_lookup: LowerLookup | None = None) -> Callable[[str, Entry], Awaitable[str]]:
    rt: AwaitedNetlink | None = None

    async def allocate(device: str, entry: Entry) -> str:
        """Create mvt<hash> on the lower device, up, in the configured mode with the lower's txqueuelen; a leftover
        link of this device (a failed sandbox leaves one: there is no deallocate) is deleted and the link made
        anew. One raw netlink round trip (create with echo) when there is no leftover, awaited on the loop."""
        nonlocal rt
        if rt is None:
            rt = AwaitedNetlink()  # created on the loop that awaits it
        tmp = temporary_link_name(device)
        lower = lower_lookup(entry.lower_device) if lower_lookup is not None else None
        if lower is None:
            lower = await rt.index_of(entry.lower_device)
            if lower is None:
                raise LowerDeviceMissing(f"lower device {entry.lower_device} does not exist on this node")
        try:
            index = await rt.create_macvtap(tmp, lower[0], entry.mode, lower[1])
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
            await rt.delete(tmp)
            index = await rt.create_macvtap(tmp, lower[0], entry.mode, lower[1])
        if not tap_device.is_ours(tap_dir, tmp, index):
            index = await _again_under_free_index(rt, tmp, lower, entry, tap_dir, index)
        registry.allocated(tmp, index)
        return f"{tap_dir}/tap{index}"

    return allocate


async def _again_under_free_index(rt: AwaitedNetlink, tmp: str, lower: tuple[int, int], entry: Entry, tap_dir: str,
                                  clashed: int) -> int:
    """/dev/tap<clashed> is another namespace's macvtap (tap_device): make the link again under an index no
    node uses, and check that one too."""
    for _ in range(FREE_INDEX_TRIES):
        await rt.delete(tmp)
        try:
            index = await rt.create_macvtap(tmp, lower[0], entry.mode, lower[1], index=tap_device.free_index(tap_dir))
        except NetlinkError as exc:
            if exc.code not in (errno.EBUSY, errno.EEXIST):  # the index is taken in this namespace: another one
                raise
            continue
        if tap_device.is_ours(tap_dir, tmp, index):
            log.warning("%s/tap%d is another network namespace's macvtap (a shared /dev): %s made again as "
                        "index %d", tap_dir, clashed, tmp, index)
            return index
    await rt.delete(tmp)
    raise TapDeviceClash(f"{tap_dir}/tap{clashed} belongs to another network namespace's macvtap and no free "
                         f"index held after {FREE_INDEX_TRIES} tries")
