"""`doctor`: read the cluster (one paginated LIST per kind) and each node agent's report, derive the View once,
then apply the rules of macvtapctl/rules/doctor/. Read-only.

Node reports come from the agents' health port (GET /doctor) through the API server's pod proxy: the reader
needs `get pods/proxy` in the agent's namespace only (docs/install.md), no exec and no node access.
"""

from __future__ import annotations

from typing import Any

from macvtapctl import identity
from macvtapctl.dig import dig
from macvtapctl.errors import ForbiddenError, MacvtapctlError, NotFoundError, PreconditionError
from macvtapctl.kube import dpconfigmap
from macvtapctl.kube.client import Kube
from macvtapctl.kube.errors import Request
from macvtapctl.kube.kubevirt_cr import get_hco, hco_owner
from macvtapctl.kube.lookup import daemonset_pods
from macvtapctl.kube.resources import (
    CONFIGMAP,
    DAEMONSET,
    EVENT,
    KUBEVIRT,
    NAD,
    NODE,
    POD,
    VIRTUAL_MACHINE,
    VIRTUAL_MACHINE_INSTANCE,
    Resource,
)
from macvtapctl.ops import injector
from macvtapctl.rules import device_plugins, doctor, dpconfig, in_use
from macvtapctl.rules.doctor.workloads import failing_subjects


def _list(kube: Kube, res: Resource, namespace: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """A LIST, or [] when the kind is not served (no KubeVirt, no Multus CRD)."""
    try:
        return kube.list(res, namespace, **kw)
    except PreconditionError:
        return []


def snapshot(kube: Kube) -> tuple[doctor.Snapshot, doctor.View]:
    """The cluster and the node reports as read, and their View (built once, before the events: they and the DHCP
    probe add nothing it derives)."""

    s = doctor.Snapshot()
    s.server_version = str(kube.server_version().get("gitVersion") or "") or None
    groups = kube.request("GET", "/apis", Request("list", Resource("", "", "apis", "APIGroupList",
                                                                   namespaced=False)))
    s.openshift = any(g.get("name") == "config.openshift.io" for g in (groups or {}).get("groups") or [])
    s.kubevirts = _list(kube, KUBEVIRT)
    if len(s.kubevirts) == 1:
        s.hco_bindings = _hco_bindings(kube, s.kubevirts[0])
    s.configmaps = _list(kube, CONFIGMAP, field_selector=f"metadata.name={dpconfig.CONFIGMAP_NAME}")
    try:
        target = dpconfigmap.locate(kube, None)
    except MacvtapctlError:
        target = None  # several ConfigMaps: dp_config names them from s.configmaps
    if target is not None and target.object is not None and target.name != dpconfig.CONFIGMAP_NAME:
        s.cnao_configmap = target.name  # CNAO's devicePluginConfig points at a user-owned ConfigMap
        s.configmaps.insert(0, target.object)
    found = device_plugins.find(_list(kube, DAEMONSET))
    s.agents = [ds for p, ds in found if p.kind == device_plugins.AGENT]
    s.upstream = [ds for p, ds in found if p.kind == device_plugins.UPSTREAM]
    have = {(c["metadata"]["namespace"], c["metadata"]["name"]) for c in s.configmaps}
    for p, _ in found:  # a ConfigMap of another name that a plugin reads (CNAO's devicePluginConfig, say)
        if p.configmap and (p.namespace, p.configmap) not in have:
            cm = kube.get_or_none(CONFIGMAP, p.configmap, p.namespace)
            if cm is not None:
                s.configmaps.append(cm)
                have.add((p.namespace, p.configmap))
    for ds in [*s.agents, *s.upstream]:
        s.agent_pods += daemonset_pods(kube, ds, ds["metadata"]["namespace"])
    s.nodes = _list(kube, NODE)
    s.nads = _list(kube, NAD)
    s.vms = _list(kube, VIRTUAL_MACHINE)
    s.vmis = _list(kube, VIRTUAL_MACHINE_INSTANCE)
    s.launchers = _list(kube, POD, label_selector="kubevirt.io=virt-launcher")
    s.live = _list(kube, POD, field_selector=in_use.FIELD_SELECTOR)
    s.waiting = [p for p in s.live if dig(p, "status", "phase") != "Running"]
    s.field_manager = kube.field_manager
    _node_reports(kube, s, identity.METRICS_PORT)
    if s.kubevirts:
        # Proof, not presence: what admission gives a pod that asks for a macvtap network (nothing is created).
        s.injection = injector.prove(kube, s.nads, excluded=("kube-system", identity.DEFAULT_NAMESPACE))
    v = doctor.View.of(s)
    _events(kube, s, v)
    return s, v


def _hco_bindings(kube: Kube, kv: dict[str, Any]) -> dict[str, Any]:
    """What a HyperConverged owner of the KubeVirt CR will propagate to it (unreadable: nothing)."""

    owner = hco_owner(kv)
    if owner is None:
        return {}
    try:
        found = dig(get_hco(kube, owner, kv["metadata"]["namespace"]), "spec", "networkBinding")
    except MacvtapctlError:
        return {}
    return dict(found) if isinstance(found, dict) else {}


def _events(kube: Kube, s: doctor.Snapshot, v: doctor.View) -> None:
    """Warning events, only in the namespaces where a workload on macvtap is not running (one LIST each)."""
    namespaces = sorted({obj["metadata"]["namespace"] for obj, _, _ in failing_subjects(s, v)})
    for ns in namespaces:
        try:
            s.events += _list(kube, EVENT, ns, field_selector="type=Warning")
        except ForbiddenError:
            s.events_error = f"forbidden: reading why workloads fail needs list events (namespace {ns})"
        except MacvtapctlError as exc:
            s.events_error = exc.message


def _our_agents(s: doctor.Snapshot) -> dict[str, dict[str, Any]]:
    """node -> the pod of our agent DaemonSet on it."""
    agent_names = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in s.agents}
    ours: dict[str, dict[str, Any]] = {}
    for pod in s.agent_pods:
        owner = next((o.get("name") for o in pod["metadata"].get("ownerReferences") or []
                      if o.get("kind") == "DaemonSet"), None)
        node = dig(pod, "spec", "nodeName")
        if node and (pod["metadata"]["namespace"], owner) in agent_names:
            ours[node] = pod
    return ours


def proxy_get(kube: Kube, pod: dict[str, Any], port: int, path: str,
              query: list[tuple[str, str]] | None = None) -> Any:
    """GET a path of an agent's health port through the API server's pod proxy (needs get pods/proxy)."""
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    return kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/{path}",
                        Request("get", Resource("", "v1", "pods/proxy", "Pod"), ns, name), query=query)


def probe_dhcp(kube: Kube, s: doctor.Snapshot, resource: str, port: int) -> None:
    """doctor --probe-dhcp: each node's agent sends one DHCPDISCOVER on the resource's lower device."""
    s.dhcp_resource = resource
    for node, pod in sorted(_our_agents(s).items()):
        if dig(pod, "status", "phase") != "Running":
            s.dhcp_probes[node] = {"error": f"the agent pod {pod['metadata']['name']} is not running"}
            continue
        try:
            s.dhcp_probes[node] = proxy_get(kube, pod, port, "probe/dhcp", [("resource", resource)])
        except ForbiddenError:
            s.dhcp_probes[node] = {"error": "forbidden: the probe needs get pods/proxy in namespace "
                                            f"{pod['metadata']['namespace']}"}
        except MacvtapctlError as exc:
            s.dhcp_probes[node] = {"error": exc.message}


def _node_reports(kube: Kube, s: doctor.Snapshot, port: int) -> None:
    ours = _our_agents(s)
    for node in s.nodes:
        name = node["metadata"]["name"]
        found = ours.get(name)
        if found is None:
            s.report_errors[name] = ("not available with this device plugin (macvtap-cni)" if s.upstream and not
                                     s.agents else "no macvtapctl agent runs on this node")
            continue
        pod = found
        if dig(pod, "status", "phase") != "Running":
            s.report_errors[name] = f"the agent pod {pod['metadata']['name']} is {dig(pod, 'status', 'phase')}"
            continue
        ns = pod["metadata"]["namespace"]
        try:
            s.reports[name] = proxy_get(kube, pod, port, "doctor")
        except ForbiddenError:
            s.report_errors[name] = f"forbidden: reading node reports needs get pods/proxy in namespace {ns}"
        except MacvtapctlError as exc:
            s.report_errors[name] = f"the agent did not answer: {exc.message}"


def run(kube: Kube, *, vm: tuple[str, str] | None = None,
        dhcp_resource: str | None = None) -> tuple[list[doctor.Finding], doctor.Snapshot, doctor.View]:
    """Every finding (or only those on one VM's chain), and what they were read from; with `dhcp_resource`, each
    node's DHCP probe on that resource too."""

    if vm is not None and kube.get_or_none(VIRTUAL_MACHINE, vm[1], vm[0]) is None:
        # Before the cluster-wide read: a mistyped name is one request, not a whole snapshot.
        raise NotFoundError(f'virtualmachine.kubevirt.io "{vm[1]}" not found in namespace "{vm[0]}"')
    s, v = snapshot(kube)
    if dhcp_resource is not None:
        probe_dhcp(kube, s, dhcp_resource, identity.METRICS_PORT)
    findings = doctor.diagnose(s, v)
    if vm is not None:
        ns, name = vm
        target = next((o for o in s.vms if o["metadata"]["name"] == name and o["metadata"]["namespace"] == ns), None)
        if target is None:  # deleted since
            raise NotFoundError(f'virtualmachine.kubevirt.io "{name}" not found in namespace "{ns}"')
        findings = doctor.narrow(findings, doctor.chain_of(target, s))
    return findings, s, v
