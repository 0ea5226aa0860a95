"""The node's links, kept current from netlink events (no polling), and which of them count as physical."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("macvtapctl.agent.links")
IFF_LOOPBACK = 0x8


@dataclass(frozen=True)
class NodeLink:
    name: str
    kind: str  # "" for a plain (physical) device
    loopback: bool

    def is_physical(self, *, veth_is_physical: bool = False) -> bool:
        """A NIC or a bond, as upstream's `[]` mode exposes (not loopback, veth, bridge, VLAN, macvlan, tunnels)."""
        if self.loopback:
            return False
        if self.kind in ("", "bond"):
            return True
        return veth_is_physical and self.kind == "veth"


def _from_msg(msg: Any) -> NodeLink:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
    return NodeLink(name=str(msg.get_attr("IFLA_IFNAME")), kind=str(kind or ""),
                    loopback=bool(int(msg["flags"]) & IFF_LOOPBACK))


class LinkWatcher:
    """Keeps `links` current; calls `on_change()` after every add/remove/rename."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.links: dict[str, NodeLink] = {}
        self.by_index: dict[int, str] = {}
        self.on_change = on_change
        self.ready = asyncio.Event()
        self._ipr: Any = None

    async def run(self) -> None:
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.rtnl import RTMGRP_LINK

        while True:
            try:
                self._ipr = AsyncIPRoute()
                await self._ipr.bind(groups=RTMGRP_LINK)  # subscribe first, then dump: no event is lost
                async with AsyncIPRoute() as dump:
                    msgs = [m async for m in await dump.link("dump")]
                self.links, self.by_index = {}, {}
                for msg in msgs:
                    self._apply("RTM_NEWLINK", msg)
                self.ready.set()
                self.on_change()
                async for msg in self._ipr.get():
                    if self._apply(msg["event"], msg):
                        self.on_change()
            except asyncio.CancelledError:
                raise
            except Exception:  # netlink hiccup (e.g. ENOBUFS): resubscribe and re-dump
                log.exception("link watch failed; resubscribing")
                self.ready.clear()
                await asyncio.sleep(0.5)
            finally:
                if self._ipr is not None:
                    self._ipr.close()
                    self._ipr = None

    def _apply(self, event: str, msg: Any) -> bool:
        index = int(msg["index"])
        if event == "RTM_DELLINK":
            name = self.by_index.pop(index, None)
            if name is not None:
                self.links.pop(name, None)
                return True
            return False
        if event != "RTM_NEWLINK":
            return False
        link = _from_msg(msg)
        old = self.by_index.get(index)
        if old == link.name and self.links.get(link.name) == link:
            return False  # a flags/stats update: the set of links did not change
        if old is not None and old != link.name:
            self.links.pop(old, None)  # renamed
        self.by_index[index] = link.name
        self.links[link.name] = link
        return True

    def physical(self, *, veth_is_physical: bool = False) -> list[str]:
        return sorted(n for n, link in self.links.items() if link.is_physical(veth_is_physical=veth_is_physical))
