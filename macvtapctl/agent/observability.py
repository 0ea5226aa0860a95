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
        self.config_tolerated = Counter(
            "macvtapctl_config_tolerated_total", "Configuration quirks upstream accepts, read with a warning "
            "(per document read)", ["kind"], registry=self.registry)
        self.config_refused = Gauge("macvtapctl_config_entries_refused", "Entries of the current configuration "
                                    "that cannot be served (named in the log and on /readyz)", registry=self.registry)
        self.config_unreadable = Gauge("macvtapctl_config_unreadable", "1 while the current configuration "
                                       "document cannot be read (the last good one is served)", registry=self.registry)
        self.reclaimed = Counter("macvtapctl_leaked_links_reclaimed_total", "Leaked temporary links deleted by GC",
                                 registry=self.registry)

    def config_read(self, cfg: Any) -> None:
        """A new configuration document was read: a dpconfig.Config, or None when it could not be."""
        self.config_unreadable.set(1 if cfg is None else 0)
        if cfg is not None:
            self.config_refused.set(len(cfg.problems))
            for notice in cfg.notices:
                self.config_tolerated.labels(kind=notice.kind).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


REQUEST_TIMEOUT = 5.0
MAX_HEAD = 8192  # bytes of request line + headers
MAX_HEADERS = 64


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line, after reading (and bounding) the headers; ValueError when too large."""
    line = await reader.readline()
    size = len(line)
    for _ in range(MAX_HEADERS):
        header = await reader.readline()
        size += len(header)
        if size > MAX_HEAD:
            raise ValueError("request head too large")
        if not header.strip():
            return line
    raise ValueError("too many headers")


class HealthServer:
    def __init__(self, host: str, port: int, metrics: Metrics, ready: Callable[[], tuple[bool, str]],
                 alive: Callable[[], tuple[bool, str]]) -> None:
        self.host, self.port = host, port
        self.metrics, self.ready, self.alive = metrics, ready, alive
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEAD)
        log.info("health and metrics on http://%s:%d (/healthz /readyz /metrics)", self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # One deadline for the whole head and a bound on its size: the port is reachable from the network.
            line = await asyncio.wait_for(_read_head(reader), REQUEST_TIMEOUT)
            parts = line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else ""
            status, ctype, body = await self._route(path)
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # slow, oversized or broken requests are dropped
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
