"""`doctor`'s rules: every known way a macvtap VM fails to get on the network, as pure functions over a Snapshot
of the cluster (and of what the node agents report). No I/O; ops/doctor.py gathers the Snapshot.

Each finding has a stable id (docs/doctor.md lists them with an example each), a severity, the object it
concerns, the cause in one sentence and, where there is one, the fix as a command.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonpointer

from macvtapctl import identity, validate
from macvtapctl.dig import dig
from macvtapctl.rules import daemonset, device_plugins, dpconfig, failures, in_use, kubevirt, migration, nodes, vmlint
from macvtapctl.rules import nad as nadr

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
UPSTREAM_TEMP_NAME_LIMIT = 10  # name + "Mvp" + index must fit IFNAMSIZ on macvtap-cni <= v0.13.1
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
CNI_IGNORES = ("lowerDevice", "mac", "master", "mode", "ipam")
HOST_SHIM_RECIPE = ("ip link add mvt-host link LOWER type macvlan mode bridge && ip addr add ADDR dev mvt-host && "
                    "ip link set mvt-host up")


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    object: str  # kind/namespace/name or kind/name
    cause: str
    fix: str | None = None
    refs: tuple[str, ...] = ()  # other objects this finding concerns (narrowing by VM)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "object": self.object, "cause": self.cause,
                "fix": self.fix}


@dataclass
class Snapshot:
    """What doctor read: raw API objects, plus each node agent's report (None: no report, with the reason)."""

    server_version: str | None = None
    openshift: bool = False
    kubevirts: list[dict[str, Any]] = field(default_factory=list)
    configmaps: list[dict[str, Any]] = field(default_factory=list)  # every macvtap-deviceplugin-config
    cnao_configmap: str | None = None  # spec.macvtap.devicePluginConfig of the NetworkAddonsConfig, if any
    agents: list[dict[str, Any]] = field(default_factory=list)  # our agent DaemonSets
    upstream: list[dict[str, Any]] = field(default_factory=list)  # macvtap-cni DaemonSets reading the ConfigMap
    agent_pods: list[dict[str, Any]] = field(default_factory=list)  # pods of both
    nodes: list[dict[str, Any]] = field(default_factory=list)
    nads: list[dict[str, Any]] = field(default_factory=list)
    vms: list[dict[str, Any]] = field(default_factory=list)
    vmis: list[dict[str, Any]] = field(default_factory=list)
    launchers: list[dict[str, Any]] = field(default_factory=list)  # virt-launcher pods
    live: list[dict[str, Any]] = field(default_factory=list)  # pods not finished (in_use.FIELD_SELECTOR)
    waiting: list[dict[str, Any]] = field(default_factory=list)  # of those, the ones not Running
    events: list[dict[str, Any]] = field(default_factory=list)  # Warning events in the namespaces of `waiting`/VMIs
    events_error: str | None = None  # why events could not be read
    field_manager: str = "macvtapctl"  # whose NADs `nad create` may rewrite without --force
    dhcp_resource: str | None = None  # doctor --probe-dhcp RESOURCE
    dhcp_probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> the agent's probe answer
    hco_bindings: dict[str, Any] = field(default_factory=dict)  # what HyperConverged will propagate to KubeVirt
    reports: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # node -> agent report
    report_errors: dict[str, str] = field(default_factory=dict)  # node -> why there is no report


def ref(kind: str, name: str, namespace: str | None = None) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def obj_ref(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    return ref(str(obj.get("kind", "")).lower(), str(md.get("name")), md.get("namespace"))


# --- what the snapshot means -------------------------------------------------------------------------------------

def config_of(s: Snapshot) -> tuple[dict[str, Any] | None, dpconfig.Config | None, str | None]:
    """The ConfigMap in effect (CNAO's pointer followed), its parsed config, or why it cannot be read."""
    cms = s.configmaps
    if s.cnao_configmap:
        cms = [c for c in cms if c["metadata"]["name"] == s.cnao_configmap] or cms
    if not cms:
        return None, None, None
    # Several: the one a device plugin reads (the agent's first), as that is what the nodes serve.
    read = [(p.namespace, p.configmap) for p in sorted(_plugins(s), key=lambda p: p.kind != device_plugins.AGENT)]
    cm = next((c for key in read for c in cms if (c["metadata"]["namespace"], c["metadata"]["name"]) == key),
              cms[0])
    cfg, broken = _parsed((cm.get("data") or {}).get(dpconfig.CONFIG_KEY), f"ConfigMap {cm['metadata']['name']}")
    return cm, cfg, broken


@functools.lru_cache(maxsize=8)
def _parsed(text: str | None, where: str) -> tuple[dpconfig.Config | None, str | None]:
    """One parse per ConfigMap text: config_of is asked per VM and per node (30,006 times for 3,000 VMs, 7.5 s
    of doctor's run before). Callers only read the Config."""
    try:
        return dpconfig.parse(text, where=where), None
    except dpconfig.MalformedConfigError as exc:
        return None, exc.message


def bindings_of(s: Snapshot) -> dict[str, Any]:
    """The network bindings the KubeVirt CR registers, plus those its HyperConverged owner will propagate (it may
    not have reconciled yet)."""
    kv, _ = _kubevirt(s)
    found = dig(kv, "spec", "configuration", "network", "binding") if kv else None
    return {**(dict(found) if isinstance(found, dict) else {}), **s.hco_bindings}


def _plugins(s: Snapshot) -> list[device_plugins.Plugin]:
    return [p for p in (device_plugins.of(ds) for ds in [*s.agents, *s.upstream]) if p is not None]


def _macvtap_nads(s: Snapshot) -> list[tuple[dict[str, Any], str | None]]:
    return [(n, nadr.resource_of(n)) for n in s.nads if nadr.is_macvtap(n)]


def _kubevirt(s: Snapshot) -> tuple[dict[str, Any] | None, tuple[int, int, int] | None]:
    kv = s.kubevirts[0] if len(s.kubevirts) == 1 else None
    return kv, kubevirt.parse_version(kubevirt.observed_version_of(kv)) if kv else None


def _image_version(ds: dict[str, Any]) -> tuple[int, int, int] | None:
    for c in dig(ds, "spec", "template", "spec", "containers") or []:
        tag = str(c.get("image", "")).rpartition(":")[2]
        m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", tag)
        if m:
            return int(m[1]), int(m[2]), int(m[3])
    return None


# Report checks that judge the configuration: a report of an older configuration says nothing about the current one.
CONFIG_JUDGED = ("dp-config", "resource-capacity", "kind-dev", "l2-nested-lower")


def stale_report(s: Snapshot, node: str) -> bool:
    """The node's report judged another configuration than the ConfigMap's (the kubelet had not refreshed the
    mounted file yet, or the report predates the change)."""
    judged = (s.reports.get(node) or {}).get("configDigest")
    cm, _, _ = config_of(s)
    current = dpconfig.digest((cm.get("data") or {}).get(dpconfig.CONFIG_KEY)) if cm else None
    return judged is not None and current is not None and judged != current


def _report_checks(s: Snapshot, check_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The report results for one finding id, only what was measured (not skipped) against the current
    configuration."""
    for node, report in sorted(s.reports.items()):
        if check_id in CONFIG_JUDGED and stale_report(s, node):
            continue
        for c in (report or {}).get("checks") or []:
            if c.get("id") == check_id and c.get("status") != "skipped":
                yield node, c


def _kind_node(s: Snapshot, node: str) -> bool:
    n = next((n for n in s.nodes if n["metadata"]["name"] == node), None)
    return str(dig(n, "spec", "providerID") or "").startswith("kind://") if n else False


def _lower_of(cfg: dpconfig.Config | None, resource: str | None) -> str | None:
    if cfg is None or resource is None:
        return None
    if cfg.expose_all:
        return resource  # [] exposes each NIC under its own name
    entry = cfg.find(resource)
    return str(entry.get("lowerDevice")) if entry else None


def nad_fix(nad: dict[str, Any], s: Snapshot, *, mtu: int | None = None, promisc: bool | None = None) -> str:
    """`nad create` that rewrites this NAD as macvtapctl renders it (no owner/group, no ignored keys), keeping its
    resource, mtu and promiscMode unless told otherwise; --force when someone else wrote it (it refuses without)."""
    conf = nadr.config_of(nad) or {}
    md = nad["metadata"]
    cmd = f"macvtapctl nad create {md['name']} -n {md['namespace']} --resource {nadr.resource_of(nad)}"
    keep = conf.get("mtu") if mtu is None else mtu
    if isinstance(keep, int) and keep > 0:
        cmd += f" --mtu {keep}"
    if (conf.get("promiscMode") is True) if promisc is None else promisc:
        cmd += " --promisc"
    return cmd + (" --force" if nadr.ownership_problem(nad, s.field_manager) else "")


# --- the checks (each yields findings; ids are stable) -------------------------------------------------------------

def resource_capacity(s: Snapshot) -> Iterator[Finding]:
    """1. A NAD's resource has no devices on the nodes where its VMs can run."""
    _, cfg, _ = config_of(s)
    ready = [n for n in s.nodes if nodes.schedulable(n)]
    for nad, res in _macvtap_nads(s):
        if res is None:
            continue
        where = obj_ref(nad)
        empty = [n["metadata"]["name"] for n in ready if nodes.allocatable(n, res) == 0]
        if ready and not empty:
            continue
        lower = _lower_of(cfg, res)
        why = []
        for node in empty:
            for c in [] if stale_report(s, node) else (s.reports.get(node) or {}).get("checks") or []:
                if c.get("check") == f"lower device {lower}" and c.get("status") != "ok":
                    why.append(f"{node}: {lower} {c.get('detail')}")
        exposed = cfg is not None and (cfg.expose_all or res in cfg.names())
        fix = None if exposed else f"macvtapctl expose LOWER_DEVICE --name {res}"
        cause = f"resource {res!r} has no allocatable device " + (
            "(no node is schedulable)" if not ready else "on any schedulable node" if len(empty) == len(ready)
            else f"on node(s) {', '.join(empty)}")
        if not exposed:
            cause += ": it is not exposed in the device-plugin ConfigMap"
        elif why:
            cause += "; " + "; ".join(why)
        elif cfg is not None and cfg.expose_all:
            cause += " ([] exposes each NIC under its own name: a NIC named differently on those nodes gives "\
                     "another resource; expose it with a stable --name)"
        yield Finding("resource-capacity", ERROR if len(empty) == len(ready) else WARNING, where, cause, fix,
                      refs=(ref("resource", res), *(ref("node", n) for n in empty)))


def dp_config(s: Snapshot) -> Iterator[Finding]:
    """2. The device-plugin ConfigMap: what upstream refuses or misreads, ownership, staleness."""
    cm, cfg, broken = config_of(s)
    if cm is None:
        yield Finding("dp-config", ERROR, ref("configmap", s.cnao_configmap or dpconfig.CONFIGMAP_NAME),
                      "no device-plugin ConfigMap: no resource is advertised", "macvtapctl expose LOWER_DEVICE")
        return
    where = obj_ref({"kind": "ConfigMap", "metadata": cm["metadata"]})
    yield from _several_configmaps(s, cm)
    fix = "macvtapctl expose LOWER_DEVICE --name NAME"  # rewrites the whole document as plain JSON
    if broken:
        yield Finding("dp-config", ERROR, where, broken, fix)
        return
    assert cfg is not None
    upstream = bool(s.upstream)
    for notice in cfg.notices:
        severe = upstream and notice.kind == dpconfig.TRAILING_COMMA  # macvtap-cni exits on it
        yield Finding("dp-config", ERROR if severe else WARNING, where, notice.text, fix)
    for problem in cfg.problems:
        yield Finding("dp-config", ERROR, where, problem, fix)
    old = [v for v in (_image_version(d) for d in s.upstream) if v and v <= (0, 13, 1)]
    if old:
        for name in cfg.names():
            if len(name) > UPSTREAM_TEMP_NAME_LIMIT:
                yield Finding("dp-config", ERROR, where, f"name {name!r} is longer than {UPSTREAM_TEMP_NAME_LIMIT} "
                              "characters: macvtap-cni <= v0.13.1 names its links NAME+Mvp+index, past the "
                              "15-character limit, and allocation fails", fix, refs=(ref("resource", name),))
    owners = [o for o in dig(cm, "metadata", "ownerReferences") or [] if o.get("kind") == "NetworkAddonsConfig"]
    if owners:
        yield Finding("dp-config-owned", WARNING, where, "CNAO owns this ConfigMap and reverts edits to it",
                      "kubectl patch networkaddonsconfig cluster --type=merge -p "
                      "'{\"spec\":{\"macvtap\":{\"devicePluginConfig\":\"my-macvtap\"}}}' (then macvtapctl expose "
                      "writes my-macvtap)")
    written = device_plugins.last_written(cm)
    for ds in s.upstream:
        ns, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        pods = [p for p in s.agent_pods if p["metadata"]["namespace"] == ns
                and any(o.get("name") == name for o in p["metadata"].get("ownerReferences") or [])]
        stale = device_plugins.started_before(cm, pods)
        if stale:
            yield Finding("dp-config-stale", WARNING, ref("daemonset", name, ns),
                          f"{len(stale)} pod(s) started before the ConfigMap's last change ({written}): macvtap-cni "
                          "reads it only at start", f"kubectl -n {ns} rollout restart daemonset/{name}")


def _several_configmaps(s: Snapshot, in_effect: dict[str, Any]) -> Iterator[Finding]:
    """Device-plugin ConfigMaps in several namespaces: which plugin reads which (an edit to the other one is
    served by nobody), and an error when two plugins read different ones."""
    if len(s.configmaps) < 2:
        return
    ps = _plugins(s)
    parts = []
    for cm in s.configmaps:
        ns, name = cm["metadata"]["namespace"], cm["metadata"]["name"]
        who = device_plugins.readers(ps, ns, name)
        parts.append(f"{ns}/{name} (read by {', '.join(p.label for p in who)})" if who else
                     f"{ns}/{name} (read by no device plugin)")
    read = {(p.namespace, p.configmap) for p in ps if p.configmap}
    where = obj_ref({"kind": "ConfigMap", "metadata": in_effect["metadata"]})
    unread = [c for c in s.configmaps if (c["metadata"]["namespace"], c["metadata"]["name"]) not in read]
    agent = next((p for p in ps if p.kind == device_plugins.AGENT), None)
    if len(read) > 1 and agent is not None:  # the agent beside macvtap-cni, each with its own: switch properly
        fix = f"macvtapctl uninstall -n {agent.namespace} && macvtapctl install --take-over --image IMAGE"
    elif unread and read:
        fix = (f"kubectl -n {unread[0]['metadata']['namespace']} delete configmap {unread[0]['metadata']['name']}"
               " (if it holds no entry you need)")
    else:
        fix = "macvtapctl expose LOWER_DEVICE --dp-namespace NAMESPACE (names the one to edit)"

    yield Finding("dp-config-several", ERROR if len(read) > 1 else WARNING, where,
                  f"{len(s.configmaps)} device-plugin ConfigMaps: {'; '.join(parts)}; macvtapctl expose edits only "
                  "one of them", fix, refs=tuple(obj_ref({"kind": "ConfigMap", "metadata": c["metadata"]})
                                                 for c in s.configmaps))


def _probe_glob(s: Snapshot, ds: dict[str, Any], where: str) -> Iterator[Finding]:
    """macvtap-cni v0.13.0-v0.13.1's own manifest probes its plugin sockets with `test -S DIR/macvtap...*`: with two
    or more resources the glob gives `test` too many arguments, every probe fails, and the kubelet restarts the pod
    for ever (fixed in v0.13.2 with `ls`). Read from the probe itself, not the tag: CNAO's copy has no probes."""
    probes = [p for c in dig(ds, "spec", "template", "spec", "containers") or []
              for p in (c.get("livenessProbe"), c.get("readinessProbe")) if isinstance(p, dict)]
    if not any("test -S" in cmd and "*" in cmd for p in probes
               if (cmd := " ".join(str(a) for a in dig(p, "exec", "command") or []))):
        return
    cfg = config_of(s)[1]
    entries = len(cfg.items) if cfg is not None else None
    prefix = validate.RESOURCE_PREFIX + "/"
    advertised = max((sum(1 for k in dig(n, "status", "allocatable") or {} if k.startswith(prefix))
                      for n in s.nodes), default=0)
    fix = "upgrade macvtap-cni to v0.13.2 (its probes use ls), or: macvtapctl install --take-over"
    cause = ("macvtap-cni's probes run `test -S` on a glob of its plugin sockets: with two or more exposed resources "
             "it gets too many arguments, fails, and the kubelet restarts the pod for ever (v0.13.0-v0.13.1)")
    if (entries or 0) >= 2 or advertised >= 2:
        yield Finding("version-pair", ERROR, where, cause, fix)
    elif entries == 0:  # upstream's [] exposes every NIC of the node
        yield Finding("version-pair", WARNING, where, cause + "; the ConfigMap's [] exposes every NIC, so every "
                      "node with two or more NICs is hit", fix)


def versions(s: Snapshot) -> Iterator[Finding]:
    """4. Version pairs known bad, gates, and the injection feature (and 3's rule for upstream)."""
    kv, version = _kubevirt(s)
    k8s = kubevirt.parse_version(s.server_version)
    for ds in s.upstream:
        where = obj_ref({"kind": "DaemonSet", "metadata": ds["metadata"]})
        yield from _probe_glob(s, ds, where)
        dp = _image_version(ds)
        if dp is None:
            continue
        if k8s and k8s >= (1, 25, 0) and dp < (0, 10, 0):
            yield Finding("version-pair", ERROR, where, "macvtap-cni before v0.10.0 crashes on Kubernetes >= 1.25 "
                          "(device-plugin registration)", "upgrade macvtap-cni, or: macvtapctl install")
        if version and version >= (1, 5, 0) and dp < (0, 13, 1):
            yield Finding("version-pair", ERROR, where, "KubeVirt >= v1.5 no longer chowns /dev/tapN: macvtap-cni "
                          "before v0.13.1 leaves it root:root 0600 and qemu (uid 107) gets Permission denied",
                          "upgrade macvtap-cni to v0.13.1 or later, or: macvtapctl install")
    if kv is not None and (deploying := kubevirt.deployment_problem(kv)):
        yield Finding("kubevirt-deploying", ERROR, obj_ref({"kind": "KubeVirt", "metadata": kv["metadata"]}),
                      f"{deploying}: no VM starts before it is Deployed",
                      f"kubectl get pods -n {kv['metadata'].get('namespace')}   (and their events)")
    if not s.kubevirts:
        yield Finding("kubevirt-missing", ERROR, ref("kubevirt", "kubevirt"), "KubeVirt is not installed (no "
                      "KubeVirt CR): nothing starts the VMs", "install KubeVirt (its operator, then a KubeVirt CR)")
    elif kv is None:
        yield Finding("kubevirt-missing", ERROR, ref("kubevirt", "kubevirt"), f"{len(s.kubevirts)} KubeVirt CRs ("
                      f"{', '.join(obj_ref({'kind': 'KubeVirt', 'metadata': k['metadata']}) for k in s.kubevirts)}):"
                      " KubeVirt runs one", "delete all but one")
    if kv is None or version is None:
        return
    where = obj_ref({"kind": "KubeVirt", "metadata": kv["metadata"]})
    state = kubevirt.gates_of(kv, version)
    tap = [n for n, b in bindings_of(s).items() if isinstance(b, dict) and b.get("domainAttachmentType") == "tap"]
    if state.supported and not tap:
        yield Finding("binding-missing", ERROR, where, "no macvtap network binding (domainAttachmentType: tap) is "
                      "registered: KubeVirt refuses VMs whose interfaces use it", "macvtapctl enable")
    if not state.supported:
        yield Finding("binding-gate", ERROR, where, f"KubeVirt {kubevirt.fmt_version(version)} has no network "
                      "binding plugins: the macvtap binding needs v1.1.0 or newer", "upgrade KubeVirt")
    if state.binding_gate_missing:
        yield Finding("binding-gate", ERROR, where, f"feature gate {kubevirt.BINDING_GATE} is missing: KubeVirt "
                      f"{'.'.join(map(str, version))} rejects VMs using network binding plugins", "macvtapctl enable")
    if state.injection_on:
        yield Finding("external-injection", WARNING, where, f"{kubevirt.INJECTION_GATE} is on: KubeVirt expects "
                      "network-resources-injector to add the macvtap resource to VM pods; without it they get no "
                      "device", "macvtapctl enable")


def vm_spec(s: Snapshot) -> Iterator[Finding]:
    """5 and 10 (across VMs): KubeVirt's view of each VM's macvtap interfaces (vmlint's rules)."""
    cm, cfg, _ = config_of(s)
    kv, _ = _kubevirt(s)
    facts = vmlint.Facts(bindings=bindings_of(s) if kv else None,
                         nads={(n["metadata"]["namespace"], n["metadata"]["name"]): n for n in s.nads},
                         exposed=cfg if cm is not None else None)
    for vm in s.vms:
        vmlint.record_macs(vm, facts)
    for vm in s.vms:
        if not vmlint.uses_macvtap(vm, facts):
            continue
        where = obj_ref(vm)
        fixes = {"core-macvtap": f"macvtapctl vm convert {vm['metadata']['name']} -n {vm['metadata']['namespace']}",
                 "no-mac": "macvtapctl vm create ... --mac auto (or set macAddress)"}
        for f in vmlint.lint(vm, facts):
            fix = re.search(r"run: (macvtapctl [^)]*)$", f.message)
            yield Finding(f"vm-{f.check}", f.severity, where, f"{f.field}: {f.message}",
                          fix[1] if fix else fixes.get(f.check), refs=_vm_refs(vm))


def _vm_refs(vm: dict[str, Any]) -> tuple[str, ...]:
    ns = vm["metadata"].get("namespace") or "default"
    out = []
    for net in vmlint.vmi_spec(vm).get("networks") or []:
        name = (net.get("multus") or {}).get("networkName")
        if name:
            nns, nname = vmlint.nad_ref(name, ns)
            out.append(ref("networkattachmentdefinition", nname, nns))
    return tuple(out)


def nad_content(s: Snapshot) -> Iterator[Finding]:
    """6 and 12: keys the CNI ignores, an MTU above a lower device's, promiscMode."""
    _, cfg, _ = config_of(s)
    for nad, res in _macvtap_nads(s):
        where = obj_ref(nad)
        conf = nadr.config_of(nad) or {}
        ignored = [k for k in CNI_IGNORES if k in conf]
        if ignored:
            yield Finding("nad-ignored-keys", WARNING, where, f"the macvtap CNI ignores {', '.join(ignored)}: the "
                          "lower device comes from the device-plugin ConfigMap, the MAC from the VM, and there is no "
                          "IPAM", nad_fix(nad, s))
        mtu = conf.get("mtu")
        lower = _lower_of(cfg, res)
        if isinstance(mtu, int) and mtu > 0 and lower:
            for node, report in sorted(s.reports.items()):
                have = dig(report, "lowerDevices", lower, "mtu")
                if isinstance(have, int) and mtu > have:
                    yield Finding("nad-mtu", ERROR, where, f"mtu {mtu} is above {lower}'s MTU {have} on node {node}: "
                                  "the kernel refuses it and the pod's sandbox fails (\"invalid argument\")",
                                  nad_fix(nad, s, mtu=have),
                                  refs=(ref("node", node),))
        if "promiscMode" not in conf:
            yield Finding("promisc", INFO, where, "no promiscMode: macvtap drops multicast the guest did not "
                          "subscribe through it (LLDP, some IPv6 ND, mDNS); set it if the VM needs them",
                          nad_fix(nad, s, promisc=True))


def node_agents(s: Snapshot) -> Iterator[Finding]:
    """3, 7, 8, 9, 11 and 12 (node side): the agents' own reports; nodes without one are named."""
    ids = {"tap-ownership": ERROR, "kind-dev": ERROR, "agent-health": ERROR, "leaked-links": WARNING,
           "l2-nested-lower": WARNING, "dp-config": None, "resource-capacity": None}
    owned = [n for n, _ in _macvtap_nads(s) if {"owner", "group"} & set(nadr.config_of(n) or {})]
    fixes = {"tap-ownership": " && ".join(nad_fix(n, s) for n in owned) if owned else
             "macvtapctl install (its CNI chowns /dev/tapN to 107:107, qemu)"}
    for check_id, severity in ids.items():
        if severity is None:  # folded into the cluster-side findings of the same id
            continue
        for node, c in _report_checks(s, check_id):
            if c.get("status") == "ok":
                continue
            sev = severity if c.get("status") == "error" else WARNING
            fix = fixes.get(check_id)
            if check_id == "kind-dev":
                fix = ("macvtapctl kind-config (recreate the KinD cluster with it)" if _kind_node(s, node) else
                       "mount the node's /dev into the agent pod (hostPath /dev, as macvtapctl install does)")
            yield Finding(check_id, sev, ref("node", node), f"{c.get('check')}: {c.get('detail')}", fix)
    for node in sorted(s.reports):
        if stale_report(s, node):
            yield Finding("node-report-stale", INFO, ref("node", node), "the agent's last report judged an older "
                          "device-plugin configuration (each agent reports once a minute): its configuration checks "
                          "are left out", "macvtapctl doctor   (again in a minute)")
    yield from config_source(s)
    for node, report in sorted(s.reports.items()):
        if report and report.get("virtualization"):
            yield Finding("virtualised-node", WARNING, ref("node", node),
                          f"the node is a VM ({report['virtualization']}): the outer switch must allow "
                          "promiscuous mode / forged transmits, or frames for VM MACs never arrive")
    for node, why in sorted(s.report_errors.items()):
        yield Finding("node-no-report", INFO, ref("node", node), f"node-side checks not available: {why}")


def config_source(s: Snapshot) -> Iterator[Finding]:
    """A node whose agent cannot follow its ConfigMap through the API server: a change reaches it only when the
    kubelet refreshes the mounted copy (its sync period, a minute by default), or not at all while it keeps the
    API's last document. Reports of agents without the API watch carry no configSource and say nothing here."""
    for node, report in sorted(s.reports.items()):
        src = (report or {}).get("configSource") or {}
        if not src or (src.get("source") == "api" and not src.get("detail")):
            continue
        where = src.get("from", "?")
        if src.get("source") == "file":
            message = (f"the agent reads the mounted {where}, not the API server: a change reaches this node after "
                       f"the kubelet's sync period (a minute by default): {src.get('detail', '')}")
        else:
            message = f"the agent serves the last {where} it saw: {src.get('detail', '')}"
        detail = str(src.get("detail", ""))
        fix = ("macvtapctl install (it writes the agent's Role and RoleBinding)" if "forbidden" in detail or
               "HTTP 401" in detail else "the agent's log (kubectl logs) says why the API server does not answer")
        yield Finding("config-source", WARNING, ref("node", node), message, fix)


def agent_health(s: Snapshot) -> Iterator[Finding]:
    """8 (cluster side): the DaemonSet, its pods, the platform."""
    if not s.agents and not s.upstream:
        yield Finding("agent-health", ERROR, ref("daemonset", identity.AGENT_NAME), "no macvtap agent or macvtap-cni "
                      "DaemonSet: nothing advertises devices or runs the CNI", "macvtapctl install --image IMAGE")
    for node, both in device_plugins.shared_nodes(_plugins(s), s.agent_pods).items():
        agent_there = any(p.kind == device_plugins.AGENT for p in both)
        yield Finding("two-device-plugins", ERROR, ref("node", node),
                      f"{len(both)} macvtap device plugins run on this node ("
                      f"{'; '.join(p.describe() for p in both)}): they register the same resources with one "
                      "kubelet, which serves each from one plugin and refuses the other (\"device plugin already "
                      "connected\"); which one serves changes when either restarts",
                      "macvtapctl install --take-over (or macvtapctl uninstall --restore-upstream to go back)"
                      if agent_there else f"kubectl -n {both[-1].namespace} delete daemonset {both[-1].name}")
    for ds in [*s.agents, *s.upstream]:
        where = obj_ref({"kind": "DaemonSet", "metadata": ds["metadata"]})
        problem = daemonset.not_rolled_out(ds)
        if problem:
            yield Finding("agent-health", ERROR, where, problem,
                          f"kubectl -n {ds['metadata']['namespace']} describe daemonset {ds['metadata']['name']}")
    for pod in s.agent_pods:
        where = obj_ref({"kind": "Pod", "metadata": pod["metadata"]})
        for cs in dig(pod, "status", "containerStatuses") or []:
            waiting = dig(cs, "state", "waiting", "reason")
            cannot_pull = daemonset.pull_failure(pod, cs)
            if cannot_pull:
                yield Finding("agent-image", ERROR, where, cannot_pull, "macvtapctl install --image REGISTRY/IMAGE:TAG")
            elif waiting == "CrashLoopBackOff" or int(cs.get("restartCount") or 0) > 0:
                last = dig(cs, "lastState", "terminated", "reason") or waiting or "restarted"
                count = cs.get("restartCount") or 0
                node = dig(pod, "spec", "nodeName")
                on = f" on node {node}" if node else ""
                yield Finding("agent-restarts", WARNING, where, f"{count} restart(s){on}, last: {last}",
                              f"kubectl -n {pod['metadata']['namespace']} logs {pod['metadata']['name']} --previous")
    if s.openshift and (s.agents or s.upstream or _macvtap_nads(s)):
        yield Finding("openshift", WARNING, ref("cluster", "openshift"), "OpenShift: CNAO refuses macvtap here, and "
                      "the agent needs a privileged SCC (hostNetwork, /dev, root)",
                      "oc adm policy add-scc-to-user privileged -z macvtapctl-agent -n macvtap")


def stale_resources(s: Snapshot) -> Iterator[Finding]:
    """9: macvtap resources left on nodes that no configuration serves (the kubelet never removes them)."""
    cm, cfg, _ = config_of(s)
    if cm is None or cfg is None or cfg.expose_all:
        return
    served = set(cfg.names())
    prefix = validate.RESOURCE_PREFIX + "/"
    for node in s.nodes:
        name = node["metadata"]["name"]
        for key in sorted(dig(node, "status", "capacity") or {}):
            res = key[len(prefix):]
            if key.startswith(prefix) and res not in served:
                path = "/status/capacity/" + jsonpointer.escape(key)
                yield Finding("stale-resource", WARNING, ref("node", name), f"resource {res!r} is on the node but "
                              "no configuration serves it (the kubelet keeps a gone plugin's resources)",
                              f"kubectl patch node {name} --subresource=status --type=json -p "
                              f"'[{{\"op\":\"remove\",\"path\":\"{path}\"}}]'", refs=(ref("resource", res),))


def mac_consistency(s: Snapshot) -> Iterator[Finding]:
    """10: the VMI's MAC, the pod's network-status MAC and the VM spec agree, per macvtap interface."""
    launchers = {(p["metadata"]["namespace"], (p["metadata"].get("labels") or {}).get("vm.kubevirt.io/name")): p
                 for p in s.launchers}
    for vmi in s.vmis:
        ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
        spec_macs = {i.get("name"): str(i.get("macAddress")).lower()
                     for i in dig(vmi, "spec", "domain", "devices", "interfaces") or [] if i.get("macAddress")}
        nets = {n.get("name"): (n.get("multus") or {}).get("networkName") for n in dig(vmi, "spec", "networks") or []}
        status = {i.get("name"): str(i.get("mac") or "").lower() for i in dig(vmi, "status", "interfaces") or []}
        pod = launchers.get((ns, name))
        pod_macs: dict[str, str] = {}
        if pod is not None:
            try:
                entries = json.loads(dig(pod, "metadata", "annotations", NETWORK_STATUS) or "[]")
            except ValueError:
                entries = []
            for e in entries if isinstance(entries, list) else []:
                pod_macs[str(e.get("name", "")).rpartition("/")[2]] = str(e.get("mac") or "").lower()
        for iface, want in spec_macs.items():
            nad = (nets.get(iface) or "").rpartition("/")[2]
            for seen, what in ((status.get(iface), "the VMI status"), (pod_macs.get(nad), "the pod's network-status")):
                if seen and seen != want:
                    yield Finding("mac-mismatch", ERROR, ref("virtualmachineinstance", name, ns),
                                  f"interface {iface!r}: {what} has MAC {seen}, the spec {want}: DHCP leases and peers "
                                  "see another address than the guest uses", f"virtctl restart {name} -n {ns}")


def l2_explainers(s: Snapshot) -> Iterator[Finding]:
    """11: what macvtap does not do, said once, before someone debugs it."""
    nads = _macvtap_nads(s)
    if not nads:
        return
    _, cfg, _ = config_of(s)
    lowers = sorted({str(e.get("lowerDevice")) for e in (cfg.items if cfg else [])}) or ["LOWER"]
    yield Finding("l2-host-to-vm", INFO, obj_ref(nads[0][0]), "a node cannot reach its own VMs through the lower "
                  "device (macvtap hands the node's frames to the wire, not to its siblings' host side); use "
                  "another host, or a macvlan shim on the node", HOST_SHIM_RECIPE.replace("LOWER", lowers[0]))
    for entry in cfg.items if cfg else []:
        mode = entry.get("mode") or dpconfig.DEFAULT_MODE
        if mode in ("vepa", "private"):
            what = ("VMs on this node reach each other only if the switch port reflects frames (hairpin)"
                    if mode == "vepa" else "VMs on this node cannot reach each other at all")
            yield Finding("l2-mode", INFO, ref("resource", str(entry.get("name"))), f"mode {mode}: {what}")


# --- 13: what the workloads that do not start say ------------------------------------------------------------------

def _nads_of(obj: dict[str, Any], s: Snapshot) -> list[dict[str, Any]]:
    """The macvtap NADs a pod (its Multus annotation) or a VMI (its multus networks) attaches."""
    ns = obj["metadata"].get("namespace") or "default"
    names: list[str] = []
    if obj.get("kind") == "VirtualMachineInstance":
        names = [str((n.get("multus") or {}).get("networkName")) for n in dig(obj, "spec", "networks") or []
                 if (n.get("multus") or {}).get("networkName")]
    else:
        raw = str(dig(obj, "metadata", "annotations", NETWORKS) or "")
        try:
            parsed = json.loads(raw) if raw.strip().startswith("[") else None
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            names = [f"{e.get('namespace', ns)}/{e.get('name')}" for e in parsed if isinstance(e, dict)]
        else:
            names = [n.strip().split("@")[0] for n in raw.split(",") if n.strip()]
    by_key = {(n["metadata"]["namespace"], n["metadata"]["name"]): n for n, _ in _macvtap_nads(s)}
    out = []
    for name in names:
        key = vmlint.nad_ref(name, ns)
        if key in by_key:
            out.append(by_key[key])
    return out


def _requests_macvtap(pod: dict[str, Any]) -> bool:
    prefix = validate.RESOURCE_PREFIX + "/"
    for c in dig(pod, "spec", "containers") or []:
        res = c.get("resources") or {}
        if any(k.startswith(prefix) for k in [*(res.get("limits") or {}), *(res.get("requests") or {})]):
            return True
    return False


def _messages(obj: dict[str, Any], s: Snapshot) -> list[tuple[str, str]]:
    """(reason, message) of what this pod or VMI reports, the newest first: its Warning events, a waiting
    container's reason, a False condition's message."""
    uid = obj["metadata"].get("uid")
    key = (str(obj.get("kind")), obj["metadata"].get("namespace"), obj["metadata"].get("name"))
    events = [e for e in s.events if (dig(e, "involvedObject", "uid") == uid and uid) or (
        (dig(e, "involvedObject", "kind"), dig(e, "involvedObject", "namespace"), dig(e, "involvedObject", "name"))
        == key)]
    events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True)
    out = [(str(e.get("reason") or ""), str(e.get("message") or "")) for e in events]
    for cs in [*(dig(obj, "status", "initContainerStatuses") or []), *(dig(obj, "status", "containerStatuses") or [])]:
        waiting = dig(cs, "state", "waiting") or {}
        if waiting.get("message"):
            out.append((str(waiting.get("reason") or "Waiting"), str(waiting["message"])))
    for cond in dig(obj, "status", "conditions") or []:
        if cond.get("status") == "False" and cond.get("message"):
            out.append((str(cond.get("reason") or cond.get("type")), str(cond["message"])))
    unique: dict[str, str] = {}
    for reason, message in out:
        unique.setdefault(message, reason)  # the same message, repeated by events and conditions, once
    return [(reason, message) for message, reason in unique.items()]


def _in_use(s: Snapshot, node: str, resource: str) -> list[str]:
    return sorted(set(in_use.holders(s.live).get((node, resource), [])))


def _insufficient(s: Snapshot, resource: str, obj: dict[str, Any] | None = None) -> tuple[str, str | None]:
    """Why a workload asking for `resource` cannot be scheduled, judged on the nodes it may run on (its
    nodeSelector: `vm create --node` pins a VM so)."""
    _, cfg, _ = config_of(s)
    if cfg is None or not (cfg.expose_all or resource in cfg.names()):
        return (f"resource {resource!r} is not exposed in the device-plugin ConfigMap",
                f"macvtapctl expose LOWER_DEVICE --name {resource}")
    lower = _lower_of(cfg, resource) or "LOWER_DEVICE"
    selector: dict[str, str] = dig(obj or {}, "spec", "nodeSelector") or {}
    schedulable = [n for n in s.nodes if nodes.schedulable(n)]
    allowed = [n for n in schedulable if nodes.selected(n, selector)]
    full, empty = [], []
    for node in allowed:
        name = node["metadata"]["name"]
        have = nodes.allocatable(node, resource)
        if have == 0:
            empty.append(name)
        else:
            users = _in_use(s, name, resource)
            if len(in_use.holders(s.live).get((name, resource), [])) >= have:
                full.append(f"{name}: all {have} in use by {', '.join(users[:5])}{' ...' if len(users) > 5 else ''}")
    if full and not empty:
        entry = cfg.find(resource) if not cfg.expose_all else None
        capacity = int((entry or {}).get("capacity") or dpconfig.DEFAULT_CAPACITY)
        return ("every device is in use (" + "; ".join(full) + ")",
                f"macvtapctl expose {lower} --name {resource} --capacity {capacity * 2}")
    excluded = [n for n in schedulable if n not in allowed and nodes.allocatable(n, resource)]
    if selector and excluded:
        # The selector's terms that rule those nodes out (KubeVirt adds its own, which every node meets).
        ruling = sorted({f"{k}={v}" for n in excluded for k, v in selector.items()
                         if (dig(n, "metadata", "labels") or {}).get(k) != v})
        names = ", ".join(n["metadata"]["name"] for n in excluded)
        return (f"no node it may run on advertises it ({', '.join(empty) or 'no node matches its nodeSelector'}: "
                f"is {lower} on them, and the agent running? see their node reports below); {names} "
                f"advertise{'s' if len(excluded) == 1 else ''} it, but its nodeSelector {','.join(ruling)} rules "
                f"{'it' if len(excluded) == 1 else 'them'} out", None)
    return (f"no schedulable node advertises it ({', '.join(empty) or 'no node'}: is {lower} on them, and the "
            "agent running? see their node reports below)", None)


# Reasons that describe where a workload is, not why: the cause is in another message (or none is known yet).
CONSEQUENCES = ("BackOff", "Unhealthy", "PodSandboxNotReady", "ContainersNotReady", "ContainersNotInitialized",
                "PodCompleted", "GuestNotRunning")
# Warnings that say nothing about the workload's network and do not keep it from starting: the kubelet's DNS
# notes (no cluster DNS configured: the pod falls back to the Default policy; too many search domains or
# nameservers: the list is cut). Seen on the real node beside a CNI failure, where they were a second "error".
UNRELATED = ("MissingClusterDNS", "DNSConfigForming")


def failing_subjects(s: Snapshot) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], tuple[str, ...]]]:
    """Each pod (virt-launcher included) and VMI on macvtap that does not run, its NADs, and the VMI a launcher
    pod belongs to."""
    for pod in s.waiting:
        if dig(pod, "metadata", "deletionTimestamp"):
            continue  # going away, not failing to start
        nads = _nads_of(pod, s)
        if nads or _requests_macvtap(pod):
            vm = (pod["metadata"].get("labels") or {}).get("vm.kubevirt.io/name")
            yield {"kind": "Pod", **pod}, nads, (ref("virtualmachineinstance", vm, pod["metadata"]["namespace"]),
                                                 ) if vm else ()
    for vmi in s.vmis:
        nads = _nads_of({"kind": "VirtualMachineInstance", **vmi}, s)
        if nads and dig(vmi, "status", "phase") not in ("Running", "Succeeded") and not dig(
                vmi, "metadata", "deletionTimestamp"):
            yield {"kind": "VirtualMachineInstance", **vmi}, nads, ()


def _explain(s: Snapshot, obj: dict[str, Any], nads: list[dict[str, Any]], f: failures.Failure,
             verbatim: str) -> tuple[str, str, str | None] | None:
    """(finding id, cause, fix) for one known failure of a workload (None: not one of doctor's to say)."""
    md = obj["metadata"]
    describe = f"kubectl describe {obj['kind'].lower()} {md['name']} -n {md['namespace']}"
    if f.kind == failures.INSUFFICIENT:
        why, fix = _insufficient(s, f.detail, obj)
        return "workload-insufficient", f"cannot be scheduled: resource {f.detail!r}: {why}", fix
    if f.kind == failures.CNI_NOT_FOUND:
        agent = s.agents[0] if s.agents else None
        fix = f"macvtapctl install --cni-bin-dir {f.detail}"
        if agent is not None:
            image = next((c.get("image") for c in dig(agent, "spec", "template", "spec", "containers") or []), None)
            fix += f" --image {image}" if image else ""
            if agent["metadata"]["namespace"] != identity.DEFAULT_NAMESPACE:
                fix += f" --namespace {agent['metadata']['namespace']}"
        return ("workload-cni-not-found", f"the container runtime looks for the macvtap CNI plugin in {f.detail}, "
                f"where it is not installed ({verbatim})", fix)
    if f.kind == failures.MTU:
        cfg = config_of(s)[1]
        with_mtu = [n for n in nads if isinstance((nadr.config_of(n) or {}).get("mtu"), int)]
        lowers = [dig(r, "lowerDevices", lower, "mtu") for n in with_mtu for r in s.reports.values()
                  if r and (lower := _lower_of(cfg, nadr.resource_of(n)))]
        have = min((m for m in lowers if isinstance(m, int)), default=None)
        return ("workload-mtu", f"the NAD's mtu is above the lower device's: the pod's sandbox is refused "
                f"({verbatim})", nad_fix(with_mtu[0], s, mtu=have) if with_mtu and have else None)
    if f.kind == failures.TAP_DENIED:
        owned = [n for n in nads if {"owner", "group"} & set(nadr.config_of(n) or {})]
        cause = (f"qemu (uid {identity.QEMU_UID}) cannot open {f.detail or '/dev/tapN'}" + (
            f": NAD {obj_ref(owned[0])} sets owner/group, so the CNI gives the tap to them" if owned else "") +
            f" ({verbatim})")
        if not owned:
            return "workload-tap-denied", cause, "macvtapctl install (its CNI chowns /dev/tapN to 107:107)"
        # The tap was chowned when the pod was made: only a new launcher pod gets the NAD's new content.
        vm = md["name"] if obj["kind"] == "VirtualMachineInstance" else (md.get("labels") or {}).get(
            "vm.kubevirt.io/name")
        again = f" && kubectl delete vmi {vm} -n {md['namespace']}" if vm else ""
        return "workload-tap-denied", cause + (" (its VirtualMachine then starts a new one)" if vm else ""), \
            nad_fix(owned[0], s) + again
    if f.kind == failures.NO_DEVICE:
        version = _kubevirt(s)[1]
        fix = ("deploy network-resources-injector (github.com/k8snetworkplumbingwg/network-resources-injector), which "
               "adds the NAD's macvtap.network.kubevirt.io resource to pods that ask for the network")
        if version is None or version[:2] < (1, 10):
            fix = f"macvtapctl enable (KubeVirt before v1.10 adds the request itself with {kubevirt.INJECTION_GATE} " \
                  f"off), or {fix}"
        return ("workload-no-device-request", "no injector added the macvtap device request to this pod, so the "
                f"CNI got no device ({verbatim})", fix)
    if f.kind == failures.TAP_INVALID:
        return ("workload-tap-invalid", "libvirt cannot use /dev/tap<ifindex> of the pod's macvtap link "
                f"(kubevirt#17392) ({verbatim})", describe)
    if f.kind == failures.MAC_IN_USE:
        vm = md["name"] if obj["kind"] == "VirtualMachineInstance" else (md.get("labels") or {}).get(
            "vm.kubevirt.io/name")
        fix = ("give the VM another MAC (macvtapctl vm create ... --mac auto picks a free one)" if vm else
               "give the pod another MAC (the \"mac\" of its k8s.v1.cni.cncf.io/networks entry) and recreate it")
        return ("workload-mac-in-use", "the MAC is already on another macvtap of the same lower device: every NIC "
                f"needs its own ({verbatim})", fix)
    return "workload-failing", verbatim, describe


def failing_workloads(s: Snapshot) -> Iterator[Finding]:
    """13. Pods (virt-launcher included) and VMIs on macvtap that do not run: what their events and conditions say,
    each known message mapped to its cause and the fix that works; an unknown one reported verbatim."""
    said: set[tuple[str, str, str]] = set()  # (VMI, kind, detail): a launcher's cause is not repeated on its VMI
    subjects = list(failing_subjects(s))
    for obj, nads, refs in subjects:
        where = obj_ref(obj)
        for reason, message in _messages(obj, s):
            f = failures.classify(message)
            key = (refs[0] if refs else where, f.kind, f.detail if f.kind != failures.UNKNOWN else message)
            if f.kind == failures.BINDING or key in said:
                continue  # the binding: vm-binding-not-registered says it, with its fix
            if f.kind == failures.UNKNOWN and reason in CONSEQUENCES + UNRELATED:
                continue  # the state a cause leaves (no sandbox, not ready, restarting), or not about it at all
            said.add(key)
            explained = _explain(s, obj, nads, f, f"{reason}: {message}")
            if explained is not None:
                fid, cause, fix = explained
                # A message nobody has classified is a warning: it may be the cause, or beside it.
                severity = WARNING if fid == "workload-failing" else ERROR
                yield Finding(fid, severity, where, cause, fix, refs=(*refs, *(obj_ref(n) for n in nads)))
    if s.events_error and subjects:
        yield Finding("events-unreadable", INFO, ref("cluster", "events"), f"events not read: {s.events_error}")


def dhcp_probe(s: Snapshot) -> Iterator[Finding]:
    """14 (on request): did a DHCP server answer a DISCOVER on the resource's lower device, on each node?"""
    res = s.dhcp_resource
    if res is None:
        return
    if not s.dhcp_probes:
        yield Finding("dhcp-probe-failed", WARNING, ref("resource", res), "no node runs the macvtapctl agent, "
                      "which sends the probe (macvtap-cni has no such endpoint)", "macvtapctl install")
    for node, answer in sorted(s.dhcp_probes.items()):
        where, lower = ref("node", node), answer.get("lower") or "its lower device"
        if answer.get("error"):
            yield Finding("dhcp-probe-failed", WARNING, where, f"DHCP probe of {res!r}: {answer['error']}",
                          refs=(ref("resource", res),))
        elif answer.get("offered"):
            yield Finding("dhcp-offer", INFO, where, f"resource {res!r} on {lower}: {answer.get('detail')}: a guest "
                          "asking DHCP on it gets an address", refs=(ref("resource", res),))
        else:
            yield Finding("dhcp-no-offer", WARNING, where, f"resource {res!r} on {lower}: {answer.get('detail')}: a "
                          "guest asking DHCP gets no address (a macvtap NAD has no IPAM; the LAN must serve it)",
                          "run a DHCP server on that LAN, or give the guests static addresses (cloud-init "
                          "networkData)", refs=(ref("resource", res),))


MIGRATING = ("LiveMigrate", "LiveMigrateIfPossible")  # evictionStrategy values that move a VM on a drain


def migration_readiness(s: Snapshot) -> Iterator[Finding]:
    """15. A running VM on macvtap that could not move with its network (docs/migration.md): KubeVirt says it is not
    live-migratable (its reason), or no other schedulable node advertises a macvtap resource it holds. A warning
    when its evictionStrategy migrates it on a drain (the drain then blocks, or shuts it down), else info."""
    bindings = bindings_of(s)
    kv, _ = _kubevirt(s)
    cluster_strategy = dig(kv or {}, "spec", "configuration", "evictionStrategy")
    ready = [n for n in s.nodes if nodes.schedulable(n)]
    for vmi in s.vmis:
        if dig(vmi, "status", "phase") != "Running" or not migration.macvtap_interfaces(vmi, bindings):
            continue
        md = vmi["metadata"]
        where = ref("virtualmachineinstance", md["name"], md.get("namespace"))
        strategy = dig(vmi, "spec", "evictionStrategy") or cluster_strategy or "None"
        severity = WARNING if strategy in MIGRATING else INFO
        on_drain = (f" (evictionStrategy {strategy}: a drain of its node waits for a migration that cannot happen)"
                    if severity == WARNING else "")
        live = migration.condition(vmi, "LiveMigratable")
        if live is not None and live.get("status") == "False":
            yield Finding("vm-not-migratable", severity, where, f"KubeVirt: not live-migratable: "
                          f"{live.get('reason', '')}: {live.get('message', '')}{on_drain}", None)
        source = dig(vmi, "status", "nodeName")
        launcher = next((p for p in s.launchers if (dig(p, "metadata", "labels") or {}).get(
            "kubevirt.io/created-by") == md.get("uid") and dig(p, "spec", "nodeName") == source), None)
        needed = in_use.units(launcher) if launcher else {}
        lacking = sorted(r for r in needed if not any(nodes.allocatable(n, r) for n in ready
                                                      if n["metadata"]["name"] != source))
        if lacking:
            yield Finding("migration-one-node", severity, where, f"no schedulable node but {source} advertises "
                          f"{', '.join(repr(r) for r in lacking)}: the VM cannot move with its network (another node "
                          f"needs the lower device and the agent){on_drain}", None,
                          refs=tuple(ref("resource", r) for r in lacking))


CHECKS: tuple[Callable[[Snapshot], Iterator[Finding]], ...] = (
    failing_workloads, resource_capacity, dp_config, versions, vm_spec, nad_content, node_agents, agent_health,
    stale_resources, mac_consistency, l2_explainers, dhcp_probe, migration_readiness)


def diagnose(s: Snapshot) -> list[Finding]:
    """Every finding, errors first and, among them, what the failing workloads say; in a stable order."""
    found = [f for check in CHECKS for f in check(s)]
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    def group(f: Finding) -> int:  # a known cause of a failing workload, then a verbatim one, then the rest
        return 0 if f.id.startswith("workload-") and f.id != "workload-failing" else 1 if f.id.startswith(
            "workload-") else 2

    return sorted(found, key=lambda f: (rank[f.severity], group(f), f.id, f.object, f.cause))


def chain_of(vm: dict[str, Any], s: Snapshot) -> set[str]:
    """The objects a VM's network depends on: binding (KubeVirt CR), NADs, resources, the ConfigMap, the agent,
    the nodes, its VMI and pod."""
    ns, name = vm["metadata"].get("namespace") or "default", vm["metadata"]["name"]
    out = {obj_ref(vm), ref("virtualmachineinstance", name, ns), *_vm_refs(vm)}
    out.update(obj_ref({"kind": "KubeVirt", "metadata": kv["metadata"]}) for kv in s.kubevirts)
    out.update(obj_ref({"kind": "ConfigMap", "metadata": c["metadata"]}) for c in s.configmaps)
    out.add(ref("configmap", dpconfig.CONFIGMAP_NAME))
    out.update(obj_ref({"kind": "DaemonSet", "metadata": d["metadata"]}) for d in [*s.agents, *s.upstream])
    out.update(obj_ref({"kind": "Pod", "metadata": p["metadata"]}) for p in s.agent_pods)
    out.update(ref("node", n["metadata"]["name"]) for n in s.nodes)
    out.add(ref("daemonset", identity.AGENT_NAME))
    by_ref = {obj_ref(n): n for n in s.nads}
    for r in list(out):
        nad = by_ref.get(r)
        res = nadr.resource_of(nad) if nad else None
        if res:
            out.add(ref("resource", res))
    return out


def narrow(findings: list[Finding], chain: set[str]) -> list[Finding]:
    """The findings on a chain: its own objects, and what they depend on (another VM's findings are not)."""
    def other_vm(f: Finding) -> bool:
        return f.object.startswith(("virtualmachine/", "virtualmachineinstance/")) and f.object not in chain

    return [f for f in findings if not other_vm(f) and (f.object in chain or chain.intersection(f.refs))]
