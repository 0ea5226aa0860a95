"""The agent's one netlink stack: the codec (codec.py: RTNL requests encoded by pyroute2, replies read into the one
link type `Link`) and its three clients, on raw sockets the agent owns — `BlockingNetlink` here, blocking, for the
datapath and the node checks; awaited.py's `AwaitedNetlink`, awaited on the event loop, for Allocate;
subscription.py's `link_events`, awaited, the device plugin's watch of the node's links.

pyroute2's `IPRoute` is not used: its synchronous calls run an asyncio round per request (0.90 ms for a GETLINK
against 0.12 ms on a plain socket, measured) and importing it costs 12 MiB of the agent's memory.
"""

from __future__ import annotations

import errno
import importlib.util
import socket
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from macvtapctl.agent.netlink import netns
from macvtapctl.agent.netlink.link import IFF_LOOPBACK, IFF_PROMISC, IFF_UP, Link

__all__ = [
    "IFF_LOOPBACK",
    "IFF_PROMISC",
    "IFF_UP",
    "BlockingNetlink",
    "Link",
    "NetlinkError",
    "error_code",
    "host",
    "in_namespace",
    "netns",
]

TIMEOUT = 10.0
_local = threading.local()


def _pyroute2_without_its_init() -> None:
    """Let `pyroute2.netlink.*` be imported without pyroute2/__init__.py, which imports every family the library
    has (IPDB, NDB, conntrack, nftables, …): 22 MiB and 340 ms for the two modules the agent uses, which cost
    3.7 MiB alone (measured). The package's own names still work: the first `from pyroute2 import X` runs the
    real __init__."""
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.submodule_search_locations is None or spec.loader is None:
        return
    package = types.ModuleType("pyroute2")
    package.__spec__, package.__path__, package.__file__ = spec, list(spec.submodule_search_locations), spec.origin
    package.__package__ = "pyroute2"
    loader = spec.loader

    def full(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:  # `from pyroute2 import config`
            return importlib.import_module(f"pyroute2.{name}")
        del package.__dict__["__getattr__"]  # once: the real __init__ defines the public names
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = full
    sys.modules["pyroute2"] = package


_pyroute2_without_its_init()

from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402, TID253 - the stack's one error type

from macvtapctl.agent.netlink import codec  # noqa: E402


class BlockingNetlink:
    """One blocking RTNL socket (host namespace, or a pod namespace) with the calls the datapath uses."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        self.sock = sock
        self.seq = 0

    def _call(self, build: Callable[..., bytes], *args: Any, single: bool = False, **kwargs: Any) -> list[bytes]:
        """Send one request; its replies until its ACK, NLMSG_DONE or (`single`) its one answer. A reply to
        another sequence number (an earlier request that timed out) is dropped."""
        self.seq += 1
        seq = self.seq
        self.sock.sendall(build(seq, *args, **kwargs))
        chunks: list[bytes] = []
        while True:
            data = self.sock.recv(1 << 16)
            last = codec.reply(data, seq, single=single)
            if last is not None:
                chunks.append(data)
                if last:
                    return chunks

    def find(self, name: str) -> Link | None:
        """One RTM_GETLINK by name (a dump would read every link on the node)."""
        return self._get(name=name)

    def get(self, index: int) -> Link | None:
        return self._get(index=index)

    def _get(self, **key: Any) -> Link | None:
        try:
            replies = self._call(codec.getlink, single=True, **key)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise
        for data in replies:
            for link in codec.links_in(data):
                return link
        return None

    def links(self) -> list[Link]:
        return [link for data in self._call(codec.dump_request) for link in codec.links_in(data)]

    def move_to(self, index: int, netns_fd: int, *, name: str) -> None:
        """Move into another namespace and rename there, in one RTM_SETLINK (the link arrives down)."""
        self._call(codec.setlink, index, netns_fd=netns_fd, name=name)

    def configure(self, index: int, *, name: str | None = None, mtu: int | None = None, mac: str | None = None,
                  promisc: bool = False, up: bool = True, alias: str | None = None,
                  netns_fd: int | None = None, silent: bool = False) -> None:
        """Everything in one RTM_SETLINK. The kernel moves the link first (`netns_fd`, renamed on the way: a name
        taken there is EEXIST before anything moved), then applies MTU, address and alias, then the flags, so
        the link (down, as every link is right after a namespace move) is renamed before it goes up: kernels
        before ~6.2 refuse to rename an up link. Not atomic: a later step failing leaves the earlier ones done."""
        # Promiscuity is always set one way or the other: a link handed back by DEL keeps its last pod's.
        self._call(codec.setlink, index, name=name, mtu=mtu, mac=mac, alias=alias, netns_fd=netns_fd,
                   flags=(IFF_UP if up else 0) | (IFF_PROMISC if promisc else 0),
                   change=IFF_PROMISC | (IFF_UP if up else 0), silent=silent)

    def set_up(self, index: int) -> None:
        self._call(codec.setlink, index, flags=IFF_UP, change=IFF_UP)

    def set_down(self, index: int) -> None:
        self._call(codec.setlink, index, flags=0, change=IFF_UP)

    def delete(self, index: int) -> None:
        try:
            self._call(codec.dellink, index=index)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise

    def create_macvtap(self, name: str, lower_index: int, mode: str, txqlen: int, *, up: bool = False) -> Link:
        self._call(codec.newlink_macvtap, name, lower_index, mode, txqlen, up=up)
        link = self.find(name)
        assert link is not None
        return link

    def close(self) -> None:
        self.sock.close()


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def host() -> BlockingNetlink:
    """The calling thread's socket in the host namespace (kept open: one per worker thread)."""
    nl = getattr(_local, "host", None)
    if nl is None:
        nl = BlockingNetlink(_socket())
        _local.host = nl
    return nl


@contextmanager
def in_namespace(netns_fd: int) -> Iterator[BlockingNetlink]:
    """A fresh socket inside a pod's namespace, created without forking."""
    with netns.entered(netns_fd):
        sock = _socket()
    nl = BlockingNetlink(sock)
    try:
        yield nl
    finally:
        nl.close()


def error_code(exc: BaseException) -> int | None:
    """errno of a NetlinkError, else None."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None
