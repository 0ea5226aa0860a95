"""RTNL requests on one raw, non-blocking socket, awaited on the event loop (Allocate's fast path).

Sub-millisecond round trips: awaiting them on the loop costs nothing, and a thread hop measured ~6 ms per
Allocate. Every reply is matched to its request by sequence number (a late answer to a request that timed out
is dropped, never taken for the current one), and every wait has a deadline."""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
from collections.abc import Callable

from pyroute2.netlink.exceptions import NetlinkError  # noqa: TID253 - agent only; the stack's one error type

from macvtapctl.agent.netlink import codec

TIMEOUT = 10.0


class AwaitedNetlink:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0
        self.lock = asyncio.Lock()

    async def _call(self, build: Callable[..., bytes], *args: object, single: bool = False) -> list[bytes]:
        """Send one request; collect its replies until its ACK/ERROR or NLMSG_DONE (`single`: a request without
        NLM_F_ACK, answered by one message or an error)."""
        loop = asyncio.get_running_loop()
        async with self.lock:
            self.seq += 1
            seq = self.seq
            await loop.sock_sendall(self.sock, build(seq, *args))
            chunks: list[bytes] = []
            while True:
                data = await self._recv(loop)
                last = codec.reply(data, seq, single=single)
                if last is not None:
                    chunks.append(data)
                    if last:
                        return chunks

    async def _recv(self, loop: asyncio.AbstractEventLoop) -> bytes:
        """RTNL answers while the request is being sent, so the reply is usually queued already: take it without
        a trip through the selector (measured: 0.57 vs 0.80 ms per Allocate); otherwise await it, with a deadline."""
        try:
            return self.sock.recv(1 << 16)
        except BlockingIOError:
            return await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), TIMEOUT)

    async def index_of(self, name: str) -> tuple[int, int] | None:
        """(ifindex, txqlen) of a link by name, or None."""
        try:
            replies = await self._call(codec.getlink, name, single=True)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise
        for data in replies:
            for raw in codec.messages(data):
                if raw.type == codec.RTM_NEWLINK and raw.name == name:
                    link = codec.decode(raw)
                    return link.index, link.txqlen
        return None

    async def delete(self, name: str) -> bool:
        try:
            await self._call(codec.dellink, name)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise
        return True

    async def create_macvtap(self, name: str, lower_index: int, mode: str, txqlen: int, index: int = 0) -> int:
        """Create an UP macvtap (under `index` when not 0); return its ifindex (from the kernel's echo, else a
        lookup)."""
        for data in await self._call(functools.partial(codec.newlink_macvtap, index=index), name, lower_index, mode,
                                     txqlen):
            for raw in codec.messages(data):  # the echo: its index is all we need, no decoding
                if raw.type == codec.RTM_NEWLINK and raw.name == name:
                    return raw.index
        found = await self.index_of(name)  # kernels before ~6.1 do not echo new links
        if found is None:
            raise NetlinkError(errno.ENODEV, f"{name} vanished right after it was created")
        return found[0]

    def close(self) -> None:
        self.sock.close()
