"""/healthz, /readyz, /metrics and /doctor (http.server in its own thread), with a private Prometheus registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
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
        self.handoffs = Counter("macvtapctl_migration_handoffs_total", "Links of VMs that moved to another node, "
                                "set down when the LAN announced them there", registry=self.registry)
        self.handoffs_reverted = Counter("macvtapctl_migration_handoffs_reverted_total", "Links set down by a "
                                         "hand-off and up again because their guest still wrote to them (the "
                                         "announcement came from elsewhere)", registry=self.registry)
        self.targets_up = Counter("macvtapctl_migration_targets_up_total", "Migration targets' links attached "
                                  "parked (down) and set up when their guest wrote to them here",
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


REQUEST_TIMEOUT = 5.0  # for a whole request: the port is reachable from the network


class HealthServer:
    """/healthz, /readyz and /metrics on `http.server` (its parser bounds the request line and headers: 64 KiB
    per line, 100 headers), in a thread of its own — the checks are blocking netlink calls and must stay off the
    event loop. A watchdog closes any connection still open after REQUEST_TIMEOUT, so a client dribbling bytes
    cannot hold a thread (http.server alone only bounds each read)."""

    def __init__(self, host: str, port: int, metrics: Metrics, ready: Callable[[], tuple[bool, str]],
                 alive: Callable[[], tuple[bool, str]],
                 report: Callable[[], dict[str, Any] | None] | None = None,
                 probe_dhcp: Callable[[str], tuple[int, dict[str, Any]]] | None = None) -> None:
        self.host, self.port = host, port
        self.metrics, self.ready, self.alive, self.report = metrics, ready, alive, report
        self.probe_dhcp = probe_dhcp
        self.server: Any = None
        self.thread: threading.Thread | None = None

    async def start(self) -> None:
        from http.server import ThreadingHTTPServer

        self.server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)
        self.thread.start()
        log.info("health and metrics on http://%s:%d (/healthz /readyz /metrics)", self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.shutdown)
            self.server.server_close()

    def route(self, path: str, query: str = "") -> tuple[int, str, bytes]:
        checks: dict[str, Callable[[], tuple[bool, str]]] = {"/healthz": self.alive, "/readyz": self.ready}
        if path in checks:
            ok, why = checks[path]()
            return (200 if ok else 503), "text/plain", (why + "\n").encode()
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.metrics.render()
        if path == "/doctor" and self.report is not None:
            import json

            doc = self.report()
            if doc is None:
                return 503, "text/plain", b"node checks have not run yet\n"
            return 200, "application/json", json.dumps(doc).encode()
        if path == "/probe/dhcp" and self.probe_dhcp is not None:
            import json
            from urllib.parse import parse_qs

            resource = (parse_qs(query).get("resource") or [""])[0]
            status, doc = self.probe_dhcp(resource)
            return status, "application/json", json.dumps(doc).encode()
        return 404, "text/plain", b"not found\n"


def _handler(health: HealthServer) -> Any:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT
        protocol_version = "HTTP/1.0"  # one request per connection

        def setup(self) -> None:
            super().setup()
            self.watchdog = threading.Timer(REQUEST_TIMEOUT, self._expire)
            self.watchdog.daemon = True
            self.watchdog.start()

        def _expire(self) -> None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)  # SHUT_RDWR: the handler's next read or write fails

        def finish(self) -> None:
            self.watchdog.cancel()
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            # The request is read (a GET has no body): the route bounds its own time (the DHCP probe waits up to
            # 10 s), then a new watchdog bounds the reply.
            self.watchdog.cancel()
            path, _, query = self.path.partition("?")
            status, ctype, body = health.route(path, query)
            self.watchdog = threading.Timer(REQUEST_TIMEOUT, self._expire)
            self.watchdog.daemon = True
            self.watchdog.start()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("health: " + format, *args)

    return Handler
