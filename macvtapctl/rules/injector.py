"""Resource injection (KubeVirt >= v1.9): which mutating webhooks are an injector, and what a pod answered by the
API server says about injection. Pure: ops/injector.py reads and sends, these judge.

An injector adds a NAD's `k8s.v1.cni.cncf.io/resourceName` (macvtap.network.kubevirt.io/<name>) to a pod that asks
for the network: network-resources-injector (NRI) is the one upstream ships, and the SR-IOV operator and
HyperConverged deploy it under their own names (docs/install.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from macvtapctl import validate
from macvtapctl.dig import dig

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"  # NRI reads it too
# MutatingWebhookConfiguration names of injectors deployed by others, and whose they are.
KNOWN = {
    "network-resources-injector-config": "network-resources-injector's (its deployments/, or the SR-IOV operator's)",
    "network-resources-injector-mutating-config": "network-resources-injector's (made by its installer)",
    # HCO's netresinjector operand (controllers/handlers/netresinjector/common.go, read at its main, 03da3cf)
    "virt-network-resources-injector-config": "HyperConverged's network-resources-injector",
}
NRI_SERVICE_MARK = "network-resources-injector"  # the Service every known deployment calls it through


@dataclass(frozen=True)
class Injector:
    name: str  # the MutatingWebhookConfiguration
    whose: str

    def __str__(self) -> str:
        return f"mutatingwebhookconfiguration/{self.name} ({self.whose})"


def injectors(configs: list[dict[str, Any]], ours: str) -> list[Injector]:
    """The injectors among MutatingWebhookConfigurations, but `ours` (install --injector's own): by the names others
    give them, or by a webhook calling a network-resources-injector Service."""
    found = []
    for mwc in configs:
        name = str(dig(mwc, "metadata", "name") or "")
        if name == ours:
            continue
        if name in KNOWN:
            found.append(Injector(name, KNOWN[name]))
            continue
        services = [str(dig(w, "clientConfig", "service", "name") or "") for w in mwc.get("webhooks") or []]
        if any(NRI_SERVICE_MARK in s for s in services):
            found.append(Injector(name, "calls a network-resources-injector Service"))
    return found


VERIFIED, MISSING, UNKNOWN = "verified", "missing", "unknown"


@dataclass(frozen=True)
class Proof:
    """What a server-side dry run of a pod that asks for a macvtap network (and requests nothing) came back with:
    VERIFIED (the request was added), MISSING (the pod came back without it, or admission refused it), UNKNOWN (no
    dry run could be made: no macvtap NAD, or not allowed)."""

    state: str
    detail: str
    nad: str | None = None  # namespace/name the probe asked for

    @property
    def verified(self) -> bool:
        return self.state == VERIFIED


def requested(pod: dict[str, Any], resource: str) -> int:
    """How many of `resource` the pod's containers request (limits, or requests where no limit is set)."""
    total = 0
    for c in dig(pod, "spec", "containers") or []:
        res = c.get("resources") or {}
        value = (res.get("limits") or {}).get(resource, (res.get("requests") or {}).get(resource))
        if value is not None:
            try:
                total += int(str(value))
            except ValueError:
                total += 1
    return total


def judge(pod: dict[str, Any], resource: str, nad: str) -> Proof:
    """The dry run's answer: did the API server's admission add `resource` to the probe pod?"""
    full = f"{validate.RESOURCE_PREFIX}/{resource}"
    if requested(pod, full) > 0:
        return Proof(VERIFIED, f"a pod asking for {nad} is given {full} at admission", nad)
    return Proof(MISSING, f"a pod asking for {nad} comes back from admission without {full}: no injector added it",
                 nad)


def probe_pod(nad_namespace: str, nad_name: str, namespace: str) -> dict[str, Any]:
    """The pod the proof dry-runs: asks for the NAD by the networks annotation, requests nothing, and passes the
    `restricted` Pod Security level (a namespace that enforces it must not make the proof fail)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "macvtapctl-injection-probe-", "namespace": namespace,
                         "annotations": {NETWORKS_ANNOTATION: f"{nad_namespace}/{nad_name}"}},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 65535,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10",
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}
