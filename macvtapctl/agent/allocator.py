"""Allocate: (re)create the temporary macvtap for a device ID on its lower device (blocking, host netns)."""

from __future__ import annotations

from collections.abc import Callable

from macvtapctl.agent.datapath import LinkRegistry
from macvtapctl.agent.netlink import host
from macvtapctl.agent.xxh64 import temporary_link_name
from macvtapctl.dpconfig import Entry


class LowerDeviceMissing(Exception):
    pass


def make_allocator(registry: LinkRegistry, tap_dir: str = "/dev") -> Callable[[str, Entry], str]:
    def allocate(device: str, entry: Entry) -> str:
        """Delete any leftover link of this device (a failed sandbox leaves one: there is no deallocate),
        create mvt<hash> on the lower device in the configured mode with the lower's txqueuelen, set it up."""
        tmp = temporary_link_name(device)
        h = host()
        lower = h.find(entry.lower_device)
        if lower is None:
            raise LowerDeviceMissing(f"lower device {entry.lower_device} does not exist on this node")
        old = h.find(tmp)
        if old is not None:
            h.delete(old.index)
        link = h.create_macvtap(tmp, lower.index, entry.mode, lower.txqlen)
        h.configure(link.index, up=True)
        registry.allocated(tmp)
        return f"{tap_dir}/tap{link.index}"

    return allocate
