"""Allocate: (re)create the temporary macvtap for a device ID on its lower device (host netns, awaited on the
event loop)."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable

from macvtapctl.agent.link_name import temporary_link_name
from macvtapctl.agent.link_registry import LinkRegistry
from macvtapctl.agent.netlink import NetlinkError
from macvtapctl.agent.netlink.awaited import AwaitedNetlink
from macvtapctl.dpconfig import Entry


class LowerDeviceMissing(Exception):
    pass


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
        registry.allocated(tmp, index)
        return f"{tap_dir}/tap{index}"

    return allocate
