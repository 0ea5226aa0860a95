"""The third netlink client: a subscription to the kernel's link events, awaited on the event loop. Subscribed
first, then a dump of every link requested on the same socket, so that no event falls between the two: what it
yields is the dump, then `NLMSG_DONE`, then every change. An `OSError` (ENOBUFS: the kernel dropped events) ends
it; the caller subscribes again and starts over from the dump."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from macvtapctl.agent.netlink import codec

RECEIVE_BUFFER = 1 << 20  # room for a burst of events (a churn of allocations) before the kernel drops any


@asynccontextmanager
async def link_events() -> AsyncIterator[AsyncIterator[list[codec.Raw]]]:
    """`async with link_events() as batches: async for batch in batches:` — one list of messages per read."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((0, codec.RTMGRP_LINK))
        await loop.sock_sendall(sock, codec.dump_request())

        async def batches() -> AsyncIterator[list[codec.Raw]]:
            while True:
                yield list(codec.messages(await loop.sock_recv(sock, 1 << 16)))

        yield batches()
    finally:
        sock.close()
