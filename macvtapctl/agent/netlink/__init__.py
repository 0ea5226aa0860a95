"""The agent's one netlink stack (pyroute2): the link type every room uses, and the operations the datapath and
the checks need, on plain values. rtnl.py and rtnl_client.py are its raw-socket side for Allocate and the link
watcher (pyroute2 messages, awaited on the event loop, with a narrow pre-filter)."""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from macvtapctl.agent.netlink import netns

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_PROMISC = 0x100

_local = threading.local()


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    mtu: int
    mac: str
    up: bool
    promisc: bool
    lower_index: int | None
    txqlen: int
    alias: str = ""
    loopback: bool = False

    def is_physical(self, *, veth_is_physical: bool = False) -> bool:
        """A NIC or a bond, as upstream's `[]` mode exposes (not loopback, veth, bridge, VLAN, macvlan, tunnels)."""
        if self.loopback:
            return False
        if self.kind in ("", "bond"):
            return True
        return veth_is_physical and self.kind == "veth"


def link_of(msg: Any) -> Link:
    """The Link in a decoded pyroute2 ifinfmsg."""
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
    flags = int(msg["flags"])
    lower = msg.get_attr("IFLA_LINK")
    return Link(index=int(msg["index"]), name=str(msg.get_attr("IFLA_IFNAME")), kind=str(kind or ""),
                mtu=int(msg.get_attr("IFLA_MTU") or 0), mac=str(msg.get_attr("IFLA_ADDRESS") or "").lower(),
                up=bool(flags & IFF_UP), promisc=bool(flags & IFF_PROMISC),
                lower_index=int(lower) if lower else None, txqlen=int(msg.get_attr("IFLA_TXQLEN") or 0),
                alias=str(msg.get_attr("IFLA_IFALIAS") or ""), loopback=bool(flags & IFF_LOOPBACK))


class Netlink:
    """One RTNL socket (host namespace, or a pod namespace) with the calls the datapath uses."""

    def __init__(self, ipr: Any) -> None:
        self.ipr = ipr

    def find(self, name: str) -> Link | None:
        """One RTM_GETLINK by name (link_lookup would dump every link on the node)."""
        return self._get(ifname=name)

    def get(self, index: int) -> Link | None:
        return self._get(index=index)

    def _get(self, **key: Any) -> Link | None:
        from pyroute2 import NetlinkError

        try:
            return link_of(self.ipr.link("get", **key)[0])
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise

    def links(self) -> list[Link]:
        return [link_of(m) for m in self.ipr.get_links()]

    def move(self, index: int, netns_fd: int) -> None:
        self.ipr.link("set", index=index, net_ns_fd=netns_fd)

    def move_to(self, index: int, netns_fd: int, *, name: str) -> None:
        """Move into another namespace and rename there, in one RTM_SETLINK (the link arrives down)."""
        self.ipr.link("set", index=index, net_ns_fd=netns_fd, ifname=name)

    def configure(self, index: int, *, name: str | None = None, mtu: int | None = None, mac: str | None = None,
                  promisc: bool = False, up: bool = True, alias: str | None = None) -> None:
        """Everything in one RTM_SETLINK. The kernel applies address and MTU, then the name, then the flags,
        so a link that is down (as every link is right after a namespace move) is renamed before it goes up:
        kernels before ~6.2 refuse to rename an up link."""
        attrs: dict[str, Any] = {}
        if name:
            attrs["ifname"] = name
        if mtu:
            attrs["mtu"] = mtu
        if mac:
            attrs["address"] = mac
        if alias:
            attrs["ifalias"] = alias
        # Promiscuity is always set one way or the other: a link handed back by DEL keeps its last pod's.
        attrs["flags"] = (IFF_UP if up else 0) | (IFF_PROMISC if promisc else 0)
        attrs["change"] = IFF_PROMISC | (IFF_UP if up else 0)
        if attrs:
            self.ipr.link("set", index=index, **attrs)

    def delete(self, index: int) -> None:
        from pyroute2 import NetlinkError

        try:
            self.ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code != 19:
                raise

    def create_macvtap(self, name: str, lower_index: int, mode: str, txqlen: int, *, up: bool = False) -> Link:
        # `macvtap_mode` (not macvlan_mode: that one is silently dropped and the kernel defaults to vepa).
        attrs: dict[str, Any] = {"ifname": name, "kind": "macvtap", "link": lower_index,
                                 "macvtap_mode": mode}
        if txqlen:
            attrs["txqlen"] = txqlen  # never 0: a zero-length queue drops every frame
        if up:
            attrs["state"] = "up"
        self.ipr.link("add", **attrs)
        link = self.find(name)
        assert link is not None
        return link

    def close(self) -> None:
        self.ipr.close()


def host() -> Netlink:
    """The calling thread's socket in the host namespace (kept open: one per worker thread)."""
    nl = getattr(_local, "host", None)
    if nl is None:
        from pyroute2 import IPRoute

        nl = Netlink(IPRoute())
        _local.host = nl
    return nl


@contextmanager
def in_namespace(netns_fd: int) -> Iterator[Netlink]:
    """A fresh socket inside a pod's namespace, created without forking."""
    from pyroute2 import IPRoute

    sock = netns.netlink_socket(netns_fd)
    nl = Netlink(IPRoute(fileno=sock.detach()))
    try:
        yield nl
    finally:
        nl.close()


def error_code(exc: BaseException) -> int | None:
    """errno of a pyroute2 NetlinkError, else None."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None
