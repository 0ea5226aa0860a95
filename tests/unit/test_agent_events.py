"""The hand-off's Events (agent/events.py): about the VMI a launcher pod runs, named from the pod's name as KubeVirt
makes it; about the pod otherwise; none for a link whose pod is unknown; a refused POST is said once and never
blocks. The POST to the real API server with the agent's RBAC: tests/integration/test_agent_configmap_watch.py."""

from __future__ import annotations

import datetime

import pytest

from macvtapctl.agent import events
from macvtapctl.agent.cni import datapath
from macvtapctl.agent.cni.protocol import Request
from macvtapctl.agent.handoff import HANDOFF, REVERTED
from macvtapctl.rules.launcher import vmi_of_launcher

NOW = datetime.datetime(2026, 12, 7, 20, 1, 2, 345000, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("pod", "vmi"), [
    ("virt-launcher-mover-x7k2p", "mover"),
    ("virt-launcher-my-vm.b-2bcdf", "my-vm.b"),
    ("virt-launcher-virt-launcher-a-zzzzz", "virt-launcher-a"),
    ("virt-launcher-mover-aeiou", None),  # vowels: not the API server's generateName alphabet
    ("virt-launcher-mover-x7k2", None),
    ("web-0", None),
])
def test_the_vmi_of_a_launcher_pod_is_read_from_its_name(pod: str, vmi: str | None) -> None:
    assert vmi_of_launcher(pod) == vmi


def test_a_launcher_pods_event_is_about_its_vmi_and_a_warning_only_for_a_revert() -> None:
    ev = events.event(("vms", "virt-launcher-mover-x7k2p"), HANDOFF, "set down", "node-a", NOW)
    assert ev["involvedObject"] == {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                                    "name": "mover", "namespace": "vms"}
    assert ev["metadata"] == {"generateName": "mover.", "namespace": "vms"}
    assert (ev["type"], ev["reason"], ev["source"]) == ("Normal", HANDOFF, {"component": "macvtapctl-agent",
                                                                            "host": "node-a"})
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2026-12-07T20:01:02Z"
    back = events.event(("vms", "web-0"), REVERTED, "up again", "node-a", NOW)
    assert back["type"] == "Warning" and back["involvedObject"]["kind"] == "Pod"


def test_no_pod_no_event() -> None:
    rec = events.EventRecorder("node-a")
    rec.tell(None, HANDOFF, "adopted link")
    assert rec.queue.empty()


def _req(**args: str) -> Request:
    return Request(command="ADD", container_id="c", netns="/run/netns/x", ifname="net1", args=args,
                   version="1.0.0", config={})


@pytest.mark.parametrize(("args", "pod"), [
    ({"K8S_POD_NAMESPACE": "vms", "K8S_POD_NAME": "virt-launcher-a-bcdfg"}, ("vms", "virt-launcher-a-bcdfg")),
    ({"K8S_POD_NAMESPACE": "vms"}, None),
    ({"K8S_POD_NAMESPACE": "Vms", "K8S_POD_NAME": "a"}, None),
    ({"K8S_POD_NAMESPACE": "vms", "K8S_POD_NAME": "a/../b"}, None),
])
def test_the_pod_is_taken_from_cni_args_only_when_both_are_kubernetes_names(args: dict[str, str],
                                                                             pod: tuple[str, str] | None) -> None:
    assert datapath.pod_of(_req(**args)) == pod
