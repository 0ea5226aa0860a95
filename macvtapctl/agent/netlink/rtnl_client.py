"""Blocking RTNL calls on one raw socket, fast enough (sub-millisecond) to run on the event loop."""

from __future__ import annotations

import errno
import os
import socket
import threading

from macvtapctl.agent.netlink import rtnl


class RtnlError(OSError):
    pass


class Rtnl:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.settimeout(10)
        self.seq = 0
        self.lock = threading.Lock()

    def _call(self, build: object, *args: object) -> list[bytes]:
        """Send one request and read until its ACK/ERROR; returns the other messages' raw bytes."""
        with self.lock:
            self.seq += 1
            self.sock.send(build(self.seq, *args))  # type: ignore[operator]
            chunks = []
            while True:
                data = self.sock.recv(1 << 16)
                err = rtnl.error_of(data)
                if err is not None:
                    if err:
                        raise RtnlError(err, os.strerror(err))
                    chunks.append(data)
                    return chunks
                chunks.append(data)
                if any(m == rtnl.NLMSG_DONE for m in rtnl.parse(data)):
                    return chunks

    def index_of(self, name: str) -> tuple[int, int] | None:
        """(ifindex, txqlen) of a link by name, or None."""
        with self.lock:
            self.seq += 1
            self.sock.send(rtnl.getlink(self.seq, name))
            data = self.sock.recv(1 << 16)
        err = rtnl.error_of(data)
        if err == errno.ENODEV:
            return None
        if err:
            raise RtnlError(err, os.strerror(err))
        for msg in rtnl.parse(data):
            if isinstance(msg, rtnl.LinkMsg) and msg.name == name:
                return msg.index, msg.txqlen
        return None

    def delete(self, name: str) -> bool:
        try:
            self._call(rtnl.dellink, name)
        except RtnlError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        return True

    def create_macvtap(self, name: str, lower_index: int, mode: str, txqlen: int) -> int:
        """Create an UP macvtap; return its ifindex (from the kernel's echo, else a lookup)."""
        for data in self._call(rtnl.newlink_macvtap, name, lower_index, mode, txqlen):
            for msg in rtnl.parse(data):
                if isinstance(msg, rtnl.LinkMsg) and msg.name == name:
                    return msg.index
        found = self.index_of(name)  # kernels before ~6.1 do not echo new links
        if found is None:
            raise RtnlError(errno.ENODEV, f"{name} vanished right after it was created")
        return found[0]

    def close(self) -> None:
        self.sock.close()
