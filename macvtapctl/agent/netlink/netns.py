"""Network namespaces without fork: enter a namespace on the calling thread only long enough to open a
netlink socket there, then return. The socket stays bound to that namespace.

pyroute2's own `IPRoute(netns=...)` forks a helper process per socket, which gRPC does not survive and which
costs milliseconds; setns(2) on one thread is a syscall. See docs/agent.md for the measured cost.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
_libc = ctypes.CDLL(None, use_errno=True)
_host_fd: int | None = None
_lock = threading.Lock()


class NotANetns(Exception):
    """The path exists but is not a network namespace file."""


def host_netns_fd() -> int:
    """The agent's own (host) network namespace, opened once from the main thread's view."""
    global _host_fd  # noqa: PLW0603 - one process-wide fd, opened on first use
    with _lock:
        if _host_fd is None:
            _host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        return _host_fd


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_netns(path: str) -> int:
    """Open an existing netns file (never create one). FileNotFoundError if it is gone; NotANetns if not nsfs."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # Every nsfs file lives on the same pseudo device; a regular file or dir does not.
        if os.fstat(fd).st_dev != os.stat("/proc/self/ns/net").st_dev:
            raise NotANetns(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_host_netns(fd: int) -> bool:
    return os.fstat(fd).st_ino == os.fstat(host_netns_fd()).st_ino


@contextmanager
def entered(fd: int) -> Iterator[None]:
    """Run the block with this thread in the namespace `fd`; always come back to the host namespace."""
    host = host_netns_fd()
    try:
        _setns(fd)
    except OSError as exc:
        if exc.errno == 22:  # EINVAL: not a network namespace
            raise NotANetns(str(fd)) from None
        raise
    try:
        yield
    finally:
        _setns(host)  # if this fails the thread is unusable; let it raise loudly
