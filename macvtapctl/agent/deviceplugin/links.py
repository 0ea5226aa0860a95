"""The node's links, kept current from netlink events (no polling), and which of them count as physical."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from macvtapctl.agent.netlink import Link, codec
from macvtapctl.agent.netlink.subscription import link_events

log = logging.getLogger("macvtapctl.agent.deviceplugin.links")
QUIET_KINDS = ("macvtap",)


class LinkWatcher:
    """Keeps `links` current; calls `on_change()` after every add/remove/rename."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.links: dict[str, Link] = {}
        self.by_index: dict[int, str] = {}
        self.flags: dict[int, int] = {}  # ifi_flags last decoded per index: the pre-filter's memory
        self.on_change = on_change
        self.ready = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with link_events() as batches:
                    self.links, self.by_index, self.flags = {}, {}, {}
                    dumping = True
                    async for batch in batches:
                        changed = False
                        for raw in batch:
                            if raw.type == codec.NLMSG_DONE and dumping:
                                dumping = False
                                self.ready.set()
                                changed = True
                            else:
                                changed |= self.handle(raw)
                        if changed and not dumping:
                            self.on_change()
            except asyncio.CancelledError:
                raise
            except OSError:  # ENOBUFS: events were lost; resubscribe and re-dump
                log.exception("link watch failed; resubscribing")
                self.ready.clear()
                await asyncio.sleep(0.2)

    def handle(self, raw: codec.Raw) -> bool:
        """Record one link event; True when it matters to the device plugin. The pre-filter skips what carries
        nothing new (same index, name and flags: statistics, carrier, MTU); the rest is decoded by pyroute2.
        Macvtap links come and go with every allocation and are never lower devices: they do not count."""
        if raw.type == codec.RTM_DELLINK:
            self.flags.pop(raw.index, None)
            name = self.by_index.pop(raw.index, None)
            gone = self.links.pop(name, None) if name is not None else None
            return gone is not None and gone.kind not in QUIET_KINDS
        if raw.type != codec.RTM_NEWLINK:
            return False
        old = self.by_index.get(raw.index)
        if old == raw.name and self.flags.get(raw.index) == raw.flags:
            return False
        link: Link = codec.decode(raw)
        self.flags[raw.index] = raw.flags
        same = self.links.get(link.name)
        if old == link.name and same is not None and (same.kind, same.loopback) == (link.kind, link.loopback):
            self.links[link.name] = link  # flags changed (up/down): the set of links did not
            return False
        if old is not None and old != link.name:
            self.links.pop(old, None)  # renamed
        self.by_index[raw.index] = link.name
        self.links[link.name] = link
        return link.kind not in QUIET_KINDS

    def physical(self, *, veth_is_physical: bool = False) -> list[str]:
        return sorted(n for n, link in self.links.items() if link.is_physical(veth_is_physical=veth_is_physical))
