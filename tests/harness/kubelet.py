"""A kubelet stand-in built on the same proto: the Registration server plus a DevicePlugin client per plugin."""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from macvtapctl.agent.deviceplugin import api_pb2 as pb
from macvtapctl.agent.deviceplugin import api_pb2_grpc as rpc
from macvtapctl.agent.deviceplugin import podresources_pb2 as prpb
from macvtapctl.agent.deviceplugin import podresources_pb2_grpc as prrpc


@dataclass
class Plugin:
    resource: str
    endpoint: str
    channel: Any
    stub: Any
    devices: list[tuple[str, str]] = field(default_factory=list)
    updates: int = 0


class FakeKubelet(rpc.RegistrationServicer):
    def __init__(self, plugin_dir: Path) -> None:
        self.dir = plugin_dir
        self.socket = str(plugin_dir / "kubelet.sock")
        self.plugins: dict[str, Plugin] = {}
        self.registrations: list[pb.RegisterRequest] = []
        self.cond = threading.Condition()
        self.server: Any = None
        # The pod-resources API (beside device-plugins/, as on a kubelet): the device IDs live pods hold.
        self.pod_resources_socket = str(plugin_dir.parent / "pod-resources" / "kubelet.sock")
        self.owned: set[str] = set()

    # Registration service
    def Register(self, request: pb.RegisterRequest, context: Any) -> pb.Empty:
        assert request.version == "v1beta1"
        channel = grpc.insecure_channel(f"unix://{self.dir / request.endpoint}")
        stub = rpc.DevicePluginStub(channel)
        plugin = Plugin(request.resource_name, request.endpoint, channel, stub)
        stub.GetDevicePluginOptions(pb.Empty(), timeout=5)
        with self.cond:
            self.registrations.append(request)
            old = self.plugins.get(request.resource_name)
            self.plugins[request.resource_name] = plugin
            self.cond.notify_all()
        if old is not None:
            old.channel.close()
        threading.Thread(target=self._watch, args=(plugin,), daemon=True).start()
        return pb.Empty()

    def list_pod_resources(self, request: Any, context: Any) -> prpb.ListPodResourcesResponse:
        with self.cond:
            owned = sorted(self.owned)
        devices = [prpb.ContainerDevices(resource_name=f"macvtap.network.kubevirt.io/{d.rsplit('Mvp', 1)[0]}",
                                         device_ids=[d]) for d in owned]
        return prpb.ListPodResourcesResponse(pod_resources=[prpb.PodResources(
            name="live", namespace="default", containers=[prpb.ContainerResources(name="c", devices=devices)])])

    def _watch(self, plugin: Plugin) -> None:
        try:
            for resp in plugin.stub.ListAndWatch(pb.Empty()):
                with self.cond:
                    plugin.devices = [(d.ID, d.health) for d in resp.devices]
                    plugin.updates += 1
                    self.cond.notify_all()
        except grpc.RpcError:
            pass  # plugin went away

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        rpc.add_RegistrationServicer_to_server(self, self.server)
        lister = prrpc.PodResourcesListerServicer()
        lister.List = self.list_pod_resources  # type: ignore[method-assign]
        prrpc.add_PodResourcesListerServicer_to_server(lister, self.server)
        self.server.add_insecure_port(f"unix://{self.socket}")
        Path(self.pod_resources_socket).parent.mkdir(parents=True, exist_ok=True)
        self.server.add_insecure_port(f"unix://{self.pod_resources_socket}")
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0).wait()
            self.server = None
        for p in self.plugins.values():
            p.channel.close()
        Path(self.socket).unlink(missing_ok=True)
        Path(self.pod_resources_socket).unlink(missing_ok=True)

    def restart(self) -> None:
        """What a kubelet restart looks like to plugins: every socket in the directory is removed, then a
        new kubelet.sock appears."""
        self.stop()
        for entry in os.listdir(self.dir):
            if entry != "kubelet_internal_checkpoint":
                (self.dir / entry).unlink(missing_ok=True)
        with self.cond:
            self.plugins.clear()
        self.start()

    def wait(self, predicate: Any, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s; plugins: "
                                       f"{ {k: len(v.devices) for k, v in self.plugins.items()} }")
                self.cond.wait(left)

    def devices(self, resource: str) -> list[tuple[str, str]] | None:
        p = self.plugins.get(resource)
        return None if p is None else p.devices

    def allocate(self, resource: str, ids: list[str]) -> pb.AllocateResponse:
        stub = self.plugins[resource].stub
        return stub.Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)]),
                             timeout=10)
