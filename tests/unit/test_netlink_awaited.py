"""The RTNL client matches replies to requests by sequence number and never blocks the event loop."""

from __future__ import annotations

import asyncio
import errno
import struct

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from macvtapctl.agent.netlink import codec
from macvtapctl.agent.netlink.awaited import AwaitedNetlink


def ack(seq: int, err: int = 0) -> bytes:
    body = struct.pack("=i", -err) + struct.pack("=IHHII", 16, 0, 0, seq, 0)
    return struct.pack("=IHHII", 16 + len(body), 2, 0, seq, 0) + body  # NLMSG_ERROR


@pytest.fixture
def client() -> AwaitedNetlink:
    rt = AwaitedNetlink()
    rt.sock.close()  # the kernel is played by a queue of replies
    return rt


class Queued:
    """The socket's non-blocking recv: the queued replies, then EAGAIN (the client then awaits the loop)."""

    def __init__(self, replies: list[bytes], ready: bool) -> None:
        self.replies, self.ready = replies, ready

    def recv(self, n: int) -> bytes:
        if not self.ready or not self.replies:
            raise BlockingIOError
        return self.replies.pop(0)


def run_with(rt: AwaitedNetlink, replies: list[bytes], coro_of: object, *, ready: bool = True) -> object:
    async def main() -> object:
        loop = asyncio.get_running_loop()
        queue = Queued(list(replies), ready)

        async def sock_sendall(sock: object, data: bytes) -> None:
            return None

        async def sock_recv(sock: object, n: int) -> bytes:
            await asyncio.sleep(0)
            return queue.replies.pop(0)

        loop.sock_sendall = sock_sendall  # type: ignore[method-assign, assignment]
        loop.sock_recv = sock_recv  # type: ignore[method-assign, assignment]
        rt.sock = queue  # type: ignore[assignment]
        return await coro_of(rt)  # type: ignore[operator]

    return asyncio.run(main())


@pytest.mark.parametrize("ready", [True, False], ids=["reply queued", "reply awaited"])
def test_a_late_reply_to_an_earlier_request_is_never_taken_for_the_current_one(client: AwaitedNetlink, ready: bool) -> None:
    client.seq = 41  # the next request is 42; 41's ENODEV answer arrives late
    assert run_with(client, [ack(41, errno.ENODEV), ack(42)], lambda rt: rt.delete("mvtx"), ready=ready) is True


def test_an_error_for_this_request_is_raised_with_its_errno(client: AwaitedNetlink) -> None:
    with pytest.raises(NetlinkError) as info:
        run_with(client, [ack(1, errno.EBUSY)], lambda rt: rt.delete("mvtx"))
    assert info.value.code == errno.EBUSY


def test_a_missing_link_is_none_not_an_error(client: AwaitedNetlink) -> None:
    assert run_with(client, [ack(1, errno.ENODEV)], lambda rt: rt.index_of("eth9")) is None
    assert codec.seq_of(ack(7)) == 7
