"""/healthz, /readyz and /metrics over a tiny asyncio HTTP server, with a private Prometheus registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("macvtapctl.agent")


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        buckets = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
        self.allocate = Histogram("macvtapctl_allocate_seconds", "Device-plugin Allocate latency per device",
                                  ["result"], buckets=buckets, registry=self.registry)
        self.cni = Histogram("macvtapctl_cni_seconds", "CNI call latency in the agent", ["command", "result"],
                             buckets=buckets, registry=self.registry)
        self.devices = Gauge("macvtapctl_devices_advertised", "Devices advertised to the kubelet", ["resource"],
                             registry=self.registry)
        self.reclaimed = Counter("macvtapctl_leaked_links_reclaimed_total", "Leaked temporary links deleted by GC",
                                 registry=self.registry)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


class HealthServer:
    def __init__(self, host: str, port: int, metrics: Metrics, ready: Callable[[], tuple[bool, str]],
                 alive: Callable[[], tuple[bool, str]]) -> None:
        self.host, self.port = host, port
        self.metrics, self.ready, self.alive = metrics, ready, alive
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        log.info("health and metrics on http://%s:%d (/healthz /readyz /metrics)", self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)).strip():
                pass  # headers
            parts = line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else ""
            status, ctype, body = await self._route(path)
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _route(self, path: str) -> tuple[str, str, bytes]:
        checks: dict[str, Any] = {"/healthz": self.alive, "/readyz": self.ready}
        if path in checks:
            # The checks use blocking netlink: keep them off the event loop.
            ok, why = await asyncio.get_running_loop().run_in_executor(None, checks[path])
            return ("200 OK" if ok else "503 Service Unavailable", "text/plain", (why + "\n").encode())
        if path == "/metrics":
            return "200 OK", "text/plain; version=0.0.4", self.metrics.render()
        return "404 Not Found", "text/plain", b"not found\n"
