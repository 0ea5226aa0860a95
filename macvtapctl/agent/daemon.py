"""`macvtapctl agent`: asyncio wiring of the CNI server (and later the device plugin), signals, logging."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass

from macvtapctl.agent import datapath
from macvtapctl.agent.server import CniServer

log = logging.getLogger("macvtapctl.agent")


@dataclass
class AgentConfig:
    cni_socket: str = "/run/macvtapctl/cni.sock"
    gc_min_age: float = 60.0
    workers: int = 16
    tap_dir: str = "/dev"


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def run(cfg: AgentConfig) -> None:
    registry = datapath.LinkRegistry(min_age=cfg.gc_min_age)

    def handle(env: dict[str, str], stdin: bytes) -> tuple[int, bytes]:
        return datapath.handle(env, stdin, registry, tap_dir=cfg.tap_dir)

    server = CniServer(cfg.cni_socket, handle, workers=cfg.workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    log.info("agent ready")
    await stop.wait()
    log.info("shutting down")
    await server.stop()
