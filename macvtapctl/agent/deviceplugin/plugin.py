"""One kubelet device plugin per resource: macvtap.network.kubevirt.io/<name>, gRPC over a unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc  # noqa: TID253 - the agent always needs it; never imported by the admin CLI
from grpc import aio  # noqa: TID253

from macvtapctl.agent.deviceplugin import api_pb2 as pb
from macvtapctl.agent.deviceplugin import api_pb2_grpc as rpc
from macvtapctl.rules.dpconfig import Entry
from macvtapctl.rules.plugin_sockets import OUR_PREFIX
from macvtapctl.validate import RESOURCE_PREFIX, device_id, is_device_id

log = logging.getLogger("macvtapctl.agent.dp")
API_VERSION = "v1beta1"
HEALTHY = "Healthy"

Allocator = Callable[[str, Entry], Awaitable[str]]  # (device ID, entry) -> host path of /dev/tapN


SOCKET_PREFIX = OUR_PREFIX  # rules/plugin_sockets.py reads the kubelet's connections to it by this name


def socket_name(resource: str) -> str:
    """macvtapctl-<name>.sock — not upstream's macvtap.network.kubevirt.io_<name>, on purpose: the kubelet keys a
    resource's plugins by socket path, serves from the newest and falls back to the other when it goes, which is
    what makes a switch seamless. A second plugin on the same path breaks that (kubelet v1.37, measured: it loses
    the first one's entry and refuses every later registration, "device plugin already connected", until it
    restarts)."""
    return f"{SOCKET_PREFIX}{resource}.sock"


OURS, GONE, REPLACED = "ours", "gone", "replaced"


class ResourcePlugin(rpc.DevicePluginServicer):
    def __init__(self, entry: Entry, plugin_dir: str, allocate: Allocator,
                 observe: Callable[[str, float], None] | None = None) -> None:
        self.entry = entry
        self.plugin_dir = plugin_dir
        self.allocate_one = allocate
        self.observe = observe
        self.lower_present = False
        self.server: aio.Server | None = None
        self.watchers: set[asyncio.Queue[list[pb.Device]]] = set()
        self.registered = False
        self.inode: int | None = None  # of the socket we bound: the path may later hold another plugin's
        self.displaced = False  # another device plugin bound this resource's socket after us

    @property
    def resource(self) -> str:
        return f"{RESOURCE_PREFIX}/{self.entry.name}"

    @property
    def path(self) -> str:
        return os.path.join(self.plugin_dir, socket_name(self.entry.name))

    def device_ids(self) -> list[str]:
        return [device_id(self.entry.name, i) for i in range(self.entry.capacity)]

    def device_count(self) -> int:
        return self.entry.capacity if self.lower_present else 0

    def devices(self) -> list[pb.Device]:
        """Advertised only while the lower device exists; an empty list withdraws them (as upstream)."""
        if not self.lower_present:
            return []
        return [pb.Device(ID=i, health=HEALTHY) for i in self.device_ids()]

    def update(self, entry: Entry | None = None, lower_present: bool | None = None) -> None:
        before = (self.entry, self.lower_present)
        if entry is not None:
            self.entry = entry
        if lower_present is not None:
            self.lower_present = lower_present
        if (self.entry, self.lower_present) != before:
            devices = self.devices()
            log.info("%s: %d device(s) advertised", self.resource, len(devices))
            for q in self.watchers:
                q.put_nowait(devices)

    # --- gRPC service ---
    async def GetDevicePluginOptions(self, request: pb.Empty, context: Any) -> pb.DevicePluginOptions:
        return pb.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=False)

    async def ListAndWatch(self, request: pb.Empty, context: Any) -> AsyncIterator[pb.ListAndWatchResponse]:
        q: asyncio.Queue[list[pb.Device]] = asyncio.Queue()
        self.watchers.add(q)
        try:
            yield pb.ListAndWatchResponse(devices=self.devices())
            while True:
                devices = await q.get()
                while not q.empty():  # only the newest list matters
                    devices = q.get_nowait()
                yield pb.ListAndWatchResponse(devices=devices)
        finally:
            self.watchers.discard(q)

    async def GetPreferredAllocation(self, request: pb.PreferredAllocationRequest,
                                     context: Any) -> pb.PreferredAllocationResponse:
        responses = []
        for req in request.container_requests:
            chosen = list(req.must_include_deviceIDs)
            for dev in req.available_deviceIDs:
                if len(chosen) >= req.allocation_size:
                    break
                if dev not in chosen:
                    chosen.append(dev)
            responses.append(pb.ContainerPreferredAllocationResponse(deviceIDs=chosen[:max(req.allocation_size, 0)]))
        return pb.PreferredAllocationResponse(container_responses=responses)

    async def Allocate(self, request: pb.AllocateRequest, context: Any) -> pb.AllocateResponse:
        responses = []
        for creq in request.container_requests:
            specs = []
            for dev in creq.devices_ids:
                if not is_device_id(dev, self.entry.name, self.entry.capacity):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                        f"{dev!r} is not a device of {self.resource}")
                started = time.perf_counter()
                try:
                    path = await self.allocate_one(dev, self.entry)  # two netlink round trips, awaited
                except Exception as exc:
                    if self.observe:
                        self.observe("error", time.perf_counter() - started)
                    log.error("%s: allocating %s failed: %s", self.resource, dev, exc)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"allocating {dev} failed: {exc}")
                if self.observe:
                    self.observe("ok", time.perf_counter() - started)
                log.debug("%s: allocated %s as %s in %.1f ms", self.resource, dev, path,
                          (time.perf_counter() - started) * 1000)
                specs.append(pb.DeviceSpec(container_path=path, host_path=path, permissions="rw"))
            responses.append(pb.ContainerAllocateResponse(devices=specs))
        return pb.AllocateResponse(container_responses=responses)

    async def PreStartContainer(self, request: pb.PreStartContainerRequest,
                                context: Any) -> pb.PreStartContainerResponse:
        return pb.PreStartContainerResponse()

    # --- lifecycle ---
    async def serve(self) -> None:
        """Serve first (the kubelet dials back as soon as Register returns)."""
        os.makedirs(self.plugin_dir, exist_ok=True)
        # Bound under a private name, then renamed into place: the path is replaced atomically (never missing
        # for the kubelet), and gRPC, which unlinks the path it bound when it stops, never removes what is at
        # the real path then — another plugin's socket, after a switch back to macvtap-cni.
        binding = os.path.join(self.plugin_dir, f".{os.path.basename(self.path)}.binding")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(binding)
        server = aio.server()
        rpc.add_DevicePluginServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix://{binding}")
        await server.start()
        os.chmod(binding, 0o600)
        self.inode = os.stat(binding).st_ino
        os.replace(binding, self.path)
        self.server = server
        self.displaced = False

    async def register(self, kubelet_socket: str) -> None:
        async with aio.insecure_channel(f"unix://{kubelet_socket}") as channel:
            stub = rpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
            await stub.Register(pb.RegisterRequest(
                version=API_VERSION, endpoint=os.path.basename(self.path), resource_name=self.resource,
                options=pb.DevicePluginOptions()), timeout=5)
        self.registered = True
        log.info("registered %s with the kubelet", self.resource)

    async def stop(self) -> None:
        self.registered = False
        ours = self.socket_state() == OURS  # another plugin's socket at the same path is left to it
        if self.server is not None:
            await self.server.stop(grace=0.5)
            self.server = None
        if ours:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.inode = None

    def socket_state(self) -> str:
        """OURS, GONE (removed: a kubelet restart, or a plugin that had the path before us cleaning up on its
        way out) or REPLACED (another device plugin for this resource, upstream macvtap-cni's on a switch back,
        bound the path after us)."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return GONE
        return OURS if self.server is not None and inode == self.inode else REPLACED
