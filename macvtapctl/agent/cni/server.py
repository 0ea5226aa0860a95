"""The agent's CNI endpoint: a root-only unix socket speaking the shim's wire format (asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from macvtapctl.agent.cni import wire

log = logging.getLogger("macvtapctl.agent")
READ_TIMEOUT = 10.0

Handler = Callable[[dict[str, str], bytes], tuple[int, bytes]]


def peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class CniServer:
    def __init__(self, path: str, handler: Handler, *, workers: int = 16,
                 observe: Callable[[str, str, float], None] | None = None) -> None:
        self.path = path
        self.handler = handler
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cni")
        self.server: asyncio.base_events.Server | None = None
        self.observe = observe

    async def start(self) -> None:
        sock_dir = Path(self.path).parent
        sock_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(sock_dir, 0o700)  # root-only: only the shim (run by the runtime as root) may connect
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._serve, path=self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("CNI socket listening on %s", self.path)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.pool.shutdown(wait=True, cancel_futures=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            uid = peer_uid(sock) if sock is not None else None
            if uid not in (0, os.geteuid()):
                log.warning("refused CNI connection from uid %s", uid)
                return
            call = await asyncio.wait_for(self._read(reader), READ_TIMEOUT)
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            code, out = await loop.run_in_executor(self.pool, self.handler, call.env, call.stdin)
            elapsed = time.perf_counter() - started
            log.debug("CNI %s -> %d in %.1f ms", call.env.get("CNI_COMMAND"), code, elapsed * 1000)
            if self.observe is not None:
                self.observe(call.env.get("CNI_COMMAND", "?"), "ok" if code == 0 else "error", elapsed)
            writer.write(wire.encode_response(code, out))
            await writer.drain()
        except (TimeoutError, wire.WireError) as exc:
            log.warning("bad CNI request: %s", exc)
            err = {"cniVersion": "0.3.1", "code": 6, "msg": f"malformed request from the shim: {exc}"}
            writer.write(wire.encode_response(1, json.dumps(err).encode()))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> wire.Call:
        decoder = wire.Reader()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                call = wire.decode_request(bytes(decoder.buf))  # raises on a truncated request
                assert call is not None
                return call
            call = decoder.feed(chunk)
            if call is not None:
                return call
