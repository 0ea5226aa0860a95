"""Which temporary links the agent may reclaim: the rule DEL, CNI GC and the periodic reclaim share."""

from __future__ import annotations

from macvtapctl.agent.deviceplugin import podresources_pb2 as pb
from macvtapctl.agent.deviceplugin.podresources import owned_in
from macvtapctl.agent.link_registry import LinkRegistry


def test_owned_links_are_never_reclaimed_however_old() -> None:
    reg = LinkRegistry(grace=10)
    reg.first_seen["mvtaaaaaaaaaaaa"] = 0.0
    assert not reg.reclaimable("mvtaaaaaaaaaaaa", 10_000.0, {"mvtaaaaaaaaaaaa"})


def test_unowned_links_are_reclaimed_after_the_grace_only() -> None:
    reg = LinkRegistry(grace=10)
    reg.allocated("mvtbbbbbbbbbbbb")
    seen = reg.first_seen["mvtbbbbbbbbbbbb"]
    assert not reg.reclaimable("mvtbbbbbbbbbbbb", seen + 5, set())  # Allocate may answer before the pod is listed
    assert reg.reclaimable("mvtbbbbbbbbbbbb", seen + 10, set())


def test_without_the_kubelet_nothing_is_reclaimed_however_old() -> None:
    """Age proves nothing: a pod whose volumes take minutes gets its ADD long after Allocate (issue 13.2)."""
    reg = LinkRegistry(grace=10)
    reg.first_seen["mvtcccccccccccc"] = 100.0
    assert not reg.reclaimable("mvtcccccccccccc", 1e9, None)
    assert reg.reclaimable("mvtcccccccccccc", 1e9, set())


def test_a_link_an_add_is_attaching_is_never_reclaimed() -> None:
    reg = LinkRegistry(grace=0)
    reg.claim("mvtdddddddddddd")
    assert not reg.reclaimable("mvtdddddddddddd", 1e9, set())
    assert not reg.reclaimable("mvtdddddddddddd", 1e9, None)


def test_owned_device_ids_come_from_macvtap_resources_of_every_container() -> None:
    reply = pb.ListPodResourcesResponse(pod_resources=[
        pb.PodResources(name="vm-a", namespace="default", containers=[
            pb.ContainerResources(name="compute", devices=[
                pb.ContainerDevices(resource_name="macvtap.network.kubevirt.io/dataplane",
                                    device_ids=["dataplaneMvp3"]),
                pb.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=["GPU-1"])]),
            pb.ContainerResources(name="sidecar", devices=[
                pb.ContainerDevices(resource_name="macvtap.network.kubevirt.io/other", device_ids=["otherMvp0"])])]),
        pb.PodResources(name="plain", namespace="default")])
    assert owned_in(reply) == {"dataplaneMvp3", "otherMvp0"}
