"""Which macvtap device IDs the kubelet has assigned to live pods: the kubelet's pod-resources API (v1 List).

The device-plugin API has no "deallocate": a link created at Allocate belongs to its device ID until the kubelet
stops listing that ID for a live pod. This is the source of truth the agent reclaims links against.
"""

from __future__ import annotations

import grpc  # noqa: TID253 - the agent always needs it; never imported by the admin CLI

from macvtapctl.agent.deviceplugin import podresources_pb2 as pb
from macvtapctl.agent.deviceplugin import podresources_pb2_grpc as rpc
from macvtapctl.identity import POD_RESOURCES_SOCKET
from macvtapctl.validate import RESOURCE_PREFIX

DEFAULT_SOCKET = POD_RESOURCES_SOCKET
MAX_MESSAGE = 16 << 20  # a node with a few hundred pods answers in well under 1 MiB


class Unavailable(Exception):
    """The kubelet's pod-resources socket cannot be read (missing, refused, or an error from the kubelet)."""


def owned_device_ids(socket_path: str = DEFAULT_SOCKET, timeout: float = 5.0) -> set[str]:
    """Every macvtap device ID assigned to a container of a pod the kubelet still knows."""
    try:
        with grpc.insecure_channel(f"unix://{socket_path}",
                                   options=[("grpc.max_receive_message_length", MAX_MESSAGE)]) as channel:
            stub = rpc.PodResourcesListerStub(channel)  # type: ignore[no-untyped-call]
            reply = stub.List(pb.ListPodResourcesRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        raise Unavailable(f"{socket_path}: {exc.code().name}: {exc.details()}") from None
    return owned_in(reply)


def owned_in(reply: pb.ListPodResourcesResponse) -> set[str]:
    prefix = RESOURCE_PREFIX + "/"
    return {device for pod in reply.pod_resources for container in pod.containers
            for devices in container.devices if devices.resource_name.startswith(prefix)
            for device in devices.device_ids}
