"""What a pod or VMI that does not start is telling: the messages the kubelet, the container runtime, the CNI and
KubeVirt write into events and conditions, matched to a known cause. Pure: doctor's `failing_workloads` rule
decides the fix from the cluster facts behind each cause.

The patterns are the runtimes' own wording (kubelet, containerd/libcni, KubeVirt's virt-handler and libvirt),
kept loose where versions differ; a message no pattern knows is reported verbatim, never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from macvtapctl import validate

# The scheduler: "0/3 nodes are available: 3 Insufficient macvtap.network.kubevirt.io/dataplane."
_INSUFFICIENT = re.compile(r"Insufficient " + re.escape(validate.RESOURCE_PREFIX) + r"/([A-Za-z0-9._-]*[A-Za-z0-9])")
# libcni, through the container runtime: failed to find plugin "macvtap" in path [/opt/cni/bin]
_NO_PLUGIN = re.compile(r'failed to find plugin "macvtap" in path \[([^\]]*)\]')
# The CNI's MTU refusal: this agent's "mtu 9000 is larger than the MTU 1500 of lower device eth0", upstream's
# kernel EINVAL ("failed to set mtu ...: invalid argument").
_MTU = re.compile(r"\bmtu\b[^\n]*(invalid argument|larger than)|invalid argument[^\n]*\bmtu\b", re.IGNORECASE)
# libvirt or virt-handler opening /dev/tapN as qemu (uid 107).
_TAP_DENIED = re.compile(r"(/dev/tap\d+)[^\n]*permission denied|permission denied[^\n]*(/dev/tap\d+)",
                         re.IGNORECASE)
# libvirt could not find the tap of the macvtap link (kubevirt#17392).
_TAP_INVALID = re.compile(r"Unable to create tap device[^\n]*Invalid argument", re.IGNORECASE)
# The lower device already carries this MAC (the kernel's EADDRINUSE / EEXIST on the macvtap link).
_MAC_IN_USE = re.compile(r"address already in use|\bmac\b[^\n]*already used", re.IGNORECASE)
# The CNI got no deviceID: the pod does not request the NAD's resource, so the kubelet allocated no device and
# Multus had none to pass. macvtap-cni v0.13+ and this agent: "deviceID is required"; older macvtap-cni:
# `failed to lookup device "": Link not found`. From KubeVirt v1.9 (ExternalNetResourceInjection on by default)
# and for good from v1.10, an injector (network-resources-injector) must add the request to VM pods.
_NO_DEVICE = re.compile(r'deviceID is required|failed to lookup device ""')
# virt-controller's own refusal when the binding is not registered (doctor's vm-binding-not-registered says it).
_BINDING = re.compile(r"couldn't find configuration for network binding")


@dataclass(frozen=True)
class Failure:
    kind: str  # one of the constants below
    detail: str = ""  # what the pattern captured: the resource, the plugin path, the tap device


INSUFFICIENT, CNI_NOT_FOUND, MTU, TAP_DENIED, TAP_INVALID, MAC_IN_USE, BINDING, NO_DEVICE, UNKNOWN = (
    "insufficient", "cni-not-found", "mtu", "tap-denied", "tap-invalid", "mac-in-use", "binding", "no-device",
    "unknown")


def classify(message: str) -> Failure:
    """The known cause behind one event or condition message (UNKNOWN: report it verbatim)."""
    if m := _INSUFFICIENT.search(message):
        return Failure(INSUFFICIENT, m.group(1))
    if m := _NO_PLUGIN.search(message):
        return Failure(CNI_NOT_FOUND, m.group(1).split()[0] if m.group(1).split() else "")
    if _BINDING.search(message):
        return Failure(BINDING)
    if _NO_DEVICE.search(message):
        return Failure(NO_DEVICE)
    if m := _TAP_DENIED.search(message):
        return Failure(TAP_DENIED, m.group(1) or m.group(2) or "")
    if _TAP_INVALID.search(message):
        return Failure(TAP_INVALID)
    if _MTU.search(message):
        return Failure(MTU)
    if "macvtap" in message.lower() and _MAC_IN_USE.search(message):
        return Failure(MAC_IN_USE)
    return Failure(UNKNOWN)
