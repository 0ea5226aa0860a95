"""docs/agent.md: the CNI socket is root-only — its directory 0700, the socket 0600 — and the agent answers only a
caller whose SO_PEERCRED uid is root (or its own), so a process of another user can neither connect nor, if the
modes were loosened by someone, be served. Run against the real CniServer on a unix socket; the other user is
uid 65534 in a forked child."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from macvtapctl.agent.cni import wire
from macvtapctl.agent.cni.server import CniServer

NOBODY = 65534


@pytest.fixture
def server() -> Iterator[tuple[Path, list[dict[str, str]]]]:
    calls: list[dict[str, str]] = []
    # Not pytest's tmp_path: its ancestors are 0700, which would stop the other user before the agent's own modes.
    base = Path(tempfile.mkdtemp(prefix="mvt-cni-sock-"))
    base.chmod(0o755)
    path = base / "run" / "cni.sock"
    loop = asyncio.new_event_loop()
    srv = CniServer(str(path), lambda env, stdin: (calls.append(env), (0, b"{}"))[1])
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield path, calls
    asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    shutil.rmtree(base, ignore_errors=True)


def _as_nobody(path: Path) -> str:
    """Connect and send one ADD as uid 65534 in a child: what happened, as a word."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        outcome = "?"
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(path))
                s.sendall(wire.encode_request({"CNI_COMMAND": "ADD"}, b"{}"))
                s.shutdown(socket.SHUT_WR)
                outcome = "answered" if s.recv(65536) else "closed"
        except (ConnectionResetError, BrokenPipeError):  # closed with the request unread: not served either
            outcome = "closed"
        except PermissionError:
            outcome = "denied"
        except OSError as exc:
            outcome = f"error {exc.errno}"
        os.write(write, outcome.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as r:
        return r.read()


def test_the_socket_and_its_directory_are_root_only(server: tuple[Path, list[dict[str, str]]]) -> None:
    path, calls = server
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert _as_nobody(path) == "denied"
    assert calls == []


def test_another_user_is_not_served_even_where_the_modes_let_it_connect(
        server: tuple[Path, list[dict[str, str]]]) -> None:
    path, calls = server
    path.parent.chmod(0o755)
    path.chmod(0o666)  # what a careless hand could do: SO_PEERCRED still says who connected
    assert _as_nobody(path) == "closed"
    assert calls == []
    with socket.socket(socket.AF_UNIX) as s:  # root is served
        s.connect(str(path))
        s.sendall(wire.encode_request({"CNI_COMMAND": "ADD"}, b"{}"))
        s.shutdown(socket.SHUT_WR)
        code, out, _ = wire.decode_response(s.recv(65536))
    assert (code, out) == (0, b"{}") and calls == [{"CNI_COMMAND": "ADD"}]
