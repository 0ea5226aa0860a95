"""The node's links, kept current from netlink events (no polling), and which of them count as physical."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from macvtapctl.agent.netlink import rtnl

log = logging.getLogger("macvtapctl.agent.deviceplugin.links")
IFF_LOOPBACK = 0x8
QUIET_KINDS = ("macvtap",)


@dataclass(frozen=True)
class NodeLink:
    name: str
    kind: str  # "" for a plain (physical) device
    loopback: bool
    index: int = 0
    txqlen: int = 0

    def is_physical(self, *, veth_is_physical: bool = False) -> bool:
        """A NIC or a bond, as upstream's `[]` mode exposes (not loopback, veth, bridge, VLAN, macvlan, tunnels)."""
        if self.loopback:
            return False
        if self.kind in ("", "bond"):
            return True
        return veth_is_physical and self.kind == "veth"


def _from_msg(msg: rtnl.LinkMsg) -> NodeLink:
    return NodeLink(name=msg.name, kind=msg.kind, loopback=bool(msg.flags & IFF_LOOPBACK), index=msg.index,
                    txqlen=msg.txqlen)


class LinkWatcher:
    """Keeps `links` current; calls `on_change()` after every add/remove/rename."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.links: dict[str, NodeLink] = {}
        self.by_index: dict[int, str] = {}
        self.on_change = on_change
        self.ready = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                sock.bind((0, rtnl.RTMGRP_LINK))  # subscribe first, then dump: no event is lost
                await loop.sock_sendall(sock, rtnl.dump_request())
                self.links, self.by_index = {}, {}
                dumping = True
                while True:
                    data = await loop.sock_recv(sock, 1 << 16)
                    changed = False
                    for msg in rtnl.parse(data):
                        if isinstance(msg, int):
                            if msg == rtnl.NLMSG_DONE and dumping:
                                dumping = False
                                self.ready.set()
                                changed = True
                            continue
                        changed |= self._apply("RTM_DELLINK" if msg.event == rtnl.RTM_DELLINK else "RTM_NEWLINK",
                                               msg)
                    if changed and not dumping:
                        self.on_change()
            except asyncio.CancelledError:
                raise
            except OSError:  # ENOBUFS: events were lost; resubscribe and re-dump
                log.exception("link watch failed; resubscribing")
                self.ready.clear()
                await asyncio.sleep(0.2)
            finally:
                sock.close()

    def _apply(self, event: str, msg: rtnl.LinkMsg) -> bool:
        """Record the event; True when it matters to the device plugin. Macvtap links come and go with every
        allocation and are never lower devices, so they do not trigger a reconcile."""
        index = msg.index
        if event == "RTM_DELLINK":
            name = self.by_index.pop(index, None)
            if name is not None:
                gone = self.links.pop(name, None)
                return gone is not None and gone.kind not in QUIET_KINDS
            return False
        if event != "RTM_NEWLINK":
            return False
        link = _from_msg(msg)
        old = self.by_index.get(index)
        same = self.links.get(link.name)
        if old == link.name and same is not None and (same.kind, same.loopback) == (link.kind, link.loopback):
            self.links[link.name] = link  # keep txqlen current
            return False  # a flags/stats update: the set of links did not change
        if old is not None and old != link.name:
            self.links.pop(old, None)  # renamed
        self.by_index[index] = link.name
        self.links[link.name] = link
        return link.kind not in QUIET_KINDS

    def physical(self, *, veth_is_physical: bool = False) -> list[str]:
        return sorted(n for n, link in self.links.items() if link.is_physical(veth_is_physical=veth_is_physical))
