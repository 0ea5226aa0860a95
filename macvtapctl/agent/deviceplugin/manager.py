"""Runs one ResourcePlugin per configured resource; follows the config, the node's links and the kubelet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from macvtapctl.agent.deviceplugin.config_source import ConfigSource
from macvtapctl.agent.deviceplugin.links import LinkWatcher
from macvtapctl.agent.deviceplugin.plugin import GONE, REPLACED, Allocator, ResourcePlugin
from macvtapctl.rules.dpconfig import Entry

log = logging.getLogger("macvtapctl.agent.dp")
KUBELET_SOCKET = "kubelet.sock"
WATCH_INTERVAL = 0.2  # kubelet restarts are noticed (and re-registered) well within a second


class Manager:
    def __init__(self, source: ConfigSource, plugin_dir: str, allocate: Allocator, *,
                 veth_is_physical: bool = False, observe: Callable[[str, float], None] | None = None,
                 on_devices: Callable[[str, int], None] | None = None) -> None:
        self.source = source
        self.plugin_dir = plugin_dir
        self.allocate = allocate
        self.veth_is_physical = veth_is_physical
        self.observe = observe
        self.on_devices = on_devices
        self.plugins: dict[str, ResourcePlugin] = {}
        self.links = LinkWatcher(self._links_changed)
        self.kubelet_inode: int | None = None
        self._dirty = asyncio.Event()
        self._reread = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def kubelet_socket(self) -> str:
        return os.path.join(self.plugin_dir, KUBELET_SOCKET)

    def desired(self) -> dict[str, Entry]:
        if self.source.entries is None:
            return {}
        if self.source.expose_all:
            nics = self.links.physical(veth_is_physical=self.veth_is_physical)
            return {n: Entry(name=n, lower_device=n) for n in nics}
        return {e.name: e for e in self.source.entries}

    def lower(self, name: str) -> tuple[int, int] | None:
        """The lower device's (ifindex, txqlen) as the link watcher knows it (thread-safe enough: one dict read)."""
        link = self.links.links.get(name)
        return (link.index, link.txqlen) if link is not None and link.index else None

    def _links_changed(self) -> None:
        self._dirty.set()

    def config_changed(self) -> None:
        """From any thread (the ConfigMap watch): read the configuration now, not at the next interval."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._reread = True
        self._dirty.set()

    def registered(self) -> bool:
        return bool(self.plugins) and all(p.registered for p in self.plugins.values())

    def readiness(self) -> tuple[bool, str]:
        """Not ready while nothing at all is registered — a configuration that exposes nothing must be loud,
        never "ok" — or while some resource is not registered yet."""
        if not self.plugins:
            if self.source.expose_all:
                why = "the configuration is [] and this node has no physical link or bond to expose"
            elif self.source.problems:
                why = "; ".join(self.source.problems)
            else:
                why = "the configuration exposes no resource"
            return False, f"no resource can be registered: {why}"
        displaced = sorted(p.resource for p in self.plugins.values() if p.displaced)
        if displaced:
            return False, f"another device plugin serves {', '.join(displaced)} on this node"
        waiting = sorted(p.resource for p in self.plugins.values() if not p.registered)
        if waiting:
            return False, f"not registered with the kubelet yet: {', '.join(waiting)}"
        return True, "ok"

    async def reconcile(self) -> None:
        want = self.desired()
        for name in [n for n in self.plugins if n not in want]:
            log.info("resource %s removed from the configuration", name)
            await self.plugins.pop(name).stop()
            if self.on_devices:
                self.on_devices(name, 0)
        for name, entry in want.items():
            present = entry.lower_device in self.links.links
            plugin = self.plugins.get(name)
            if plugin is None:
                plugin = ResourcePlugin(entry, self.plugin_dir, self.allocate, self.observe)
                plugin.lower_present = present
                try:
                    await plugin.serve()
                except Exception as exc:  # one resource failing must not take the others down
                    log.error("cannot serve %s on %s: %s", plugin.resource, plugin.path, exc)
                    continue
                self.plugins[name] = plugin
                await self._register(plugin)
            else:
                plugin.update(entry=entry, lower_present=present)
            if self.on_devices:
                self.on_devices(name, plugin.device_count())

    async def _register(self, plugin: ResourcePlugin) -> None:
        if not os.path.exists(self.kubelet_socket):
            return  # registered when the kubelet (re)appears
        try:
            await plugin.register(self.kubelet_socket)
        except Exception as exc:
            log.error("registering %s with the kubelet failed: %s; will retry", plugin.resource, exc)

    async def restart_all(self) -> None:
        """After a kubelet restart: serve again on fresh sockets and register again, same device IDs."""
        for plugin in self.plugins.values():
            if plugin.displaced and plugin.socket_state() == REPLACED:
                continue  # the other plugin still holds it
            await plugin.stop()
            try:
                await plugin.serve()
            except Exception as exc:
                log.error("cannot serve %s on %s: %s", plugin.resource, plugin.path, exc)
                continue
            await self._register(plugin)

    def _yield_to_others(self, replaced: list[ResourcePlugin]) -> None:
        """Another device plugin bound a resource's socket after us (upstream macvtap-cni given the node back):
        registering again would take the resource back from it, and the two would fight. Stand aside, loudly
        (readiness says so), until its socket goes away."""
        for plugin in replaced:
            if not plugin.displaced:
                log.warning("another device plugin now serves %s on this node (its socket replaced ours at %s): "
                            "not registering again while it runs", plugin.resource, plugin.path)
                plugin.displaced, plugin.registered = True, False

    def _kubelet_inode(self) -> int | None:
        try:
            return os.stat(self.kubelet_socket).st_ino
        except FileNotFoundError:
            return None

    async def run(self, config_interval: float = 1.0) -> None:
        self._loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(self.links.run())
        try:
            self.source.read()
            await self.links.ready.wait()
            await self.reconcile()
            self.kubelet_inode = self._kubelet_inode()
            next_config = asyncio.get_running_loop().time() + config_interval
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), WATCH_INTERVAL)
                changed = self._dirty.is_set()
                self._dirty.clear()
                now = asyncio.get_running_loop().time()
                if now >= next_config or self._reread:
                    next_config, self._reread = now + config_interval, False
                    if self.source.read():
                        log.info("configuration changed")
                        changed = True
                if changed:
                    await self.reconcile()
                inode = self._kubelet_inode()
                states = {p: p.socket_state() for p in self.plugins.values()}
                self._yield_to_others([p for p, st in states.items() if st == REPLACED])
                lost = [p for p, st in states.items() if st == GONE]
                if inode != self.kubelet_inode or lost:
                    if inode is not None:
                        log.info("kubelet restarted (or plugin sockets removed): serving and registering again")
                        await self.restart_all()
                    self.kubelet_inode = inode
                elif inode is not None:
                    for plugin in self.plugins.values():
                        if not plugin.registered and not plugin.displaced:
                            await self._register(plugin)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def stop(self) -> None:
        for plugin in self.plugins.values():
            await plugin.stop()
        self.plugins.clear()
