"""doctor's checks on what the cluster is set up with: the device-plugin ConfigMap, versions and gates, the
device-plugin DaemonSets, the NADs, and what macvtap does not do (the rules 2, 4, 6, 8, 11 and 12 of
docs/doctor.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from macvtapctl import identity
from macvtapctl.dig import dig
from macvtapctl.rules import daemonset, device_plugins, dpconfig, kubevirt
from macvtapctl.rules import nad as nadr
from macvtapctl.rules.doctor.finding import ERROR, INFO, WARNING, Finding, nad_fix, obj_ref, ref
from macvtapctl.rules.doctor.snapshot import Snapshot
from macvtapctl.rules.doctor.view import View
from macvtapctl.rules.injector import MISSING, Proof

UPSTREAM_TEMP_NAME_LIMIT = 10  # name + "Mvp" + index must fit IFNAMSIZ on macvtap-cni <= v0.13.1


CNI_IGNORES = ("lowerDevice", "mac", "master", "mode", "ipam")


HOST_SHIM_RECIPE = ("ip link add mvt-host link LOWER type macvlan mode bridge && ip addr add ADDR dev mvt-host && "
                    "ip link set mvt-host up")


def dp_config(s: Snapshot, v: View) -> Iterator[Finding]:
    """2. The device-plugin ConfigMap: what upstream refuses or misreads, ownership, staleness."""
    cm, cfg, broken = v.configmap, v.config, v.config_error
    if cm is None:
        yield Finding("dp-config", ERROR, ref("configmap", s.cnao_configmap or dpconfig.CONFIGMAP_NAME),
                      "no device-plugin ConfigMap: no resource is advertised", "macvtapctl expose LOWER_DEVICE")
        return
    where = obj_ref({"kind": "ConfigMap", "metadata": cm["metadata"]})
    yield from _several_configmaps(s, v, cm)
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


def _several_configmaps(s: Snapshot, v: View, in_effect: dict[str, Any]) -> Iterator[Finding]:
    """Device-plugin ConfigMaps in several namespaces: which plugin reads which (an edit to the other one is
    served by nobody), and an error when two plugins read different ones."""
    if len(s.configmaps) < 2:
        return
    ps = v.plugins
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


def _probe_glob(s: Snapshot, v: View, ds: dict[str, Any], where: str) -> Iterator[Finding]:
    """macvtap-cni v0.13.0-v0.13.1's own manifest probes its plugin sockets with `test -S DIR/macvtap...*`: with two
    or more resources the glob gives `test` too many arguments, every probe fails, and the kubelet restarts the pod
    for ever (fixed in v0.13.2 with `ls`). Read from the probe itself, not the tag: CNAO's copy has no probes."""
    probes = [p for c in dig(ds, "spec", "template", "spec", "containers") or []
              for p in (c.get("livenessProbe"), c.get("readinessProbe")) if isinstance(p, dict)]
    if not any("test -S" in cmd and "*" in cmd for p in probes
               if (cmd := " ".join(str(a) for a in dig(p, "exec", "command") or []))):
        return
    cfg = v.config
    entries = len(cfg.items) if cfg is not None else None
    advertised = max((len(resources) for resources in v.advertised.values()), default=0)
    fix = "upgrade macvtap-cni to v0.13.2 (its probes use ls), or: macvtapctl install --take-over"
    cause = ("macvtap-cni's probes run `test -S` on a glob of its plugin sockets: with two or more exposed resources "
             "it gets too many arguments, fails, and the kubelet restarts the pod for ever (v0.13.0-v0.13.1)")
    if (entries or 0) >= 2 or advertised >= 2:
        yield Finding("version-pair", ERROR, where, cause, fix)
    elif entries == 0:  # upstream's [] exposes every NIC of the node
        yield Finding("version-pair", WARNING, where, cause + "; the ConfigMap's [] exposes every NIC, so every "
                      "node with two or more NICs is hit", fix)


def versions(s: Snapshot, v: View) -> Iterator[Finding]:
    """4. Version pairs known bad, gates, and the injection feature (and 3's rule for upstream)."""
    kv, version = v.kubevirt, v.kubevirt_version
    k8s = kubevirt.parse_version(s.server_version)
    for ds in s.upstream:
        where = obj_ref({"kind": "DaemonSet", "metadata": ds["metadata"]})
        yield from _probe_glob(s, v, ds, where)
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
    if state.supported and not v.macvtap_bindings:
        yield Finding("binding-missing", ERROR, where, "no macvtap network binding (domainAttachmentType: tap) is "
                      "registered: KubeVirt refuses VMs whose interfaces use it", "macvtapctl enable")
    if not state.supported:
        yield Finding("binding-gate", ERROR, where, f"KubeVirt {kubevirt.fmt_version(version)} has no network "
                      "binding plugins: the macvtap binding needs v1.1.0 or newer", "upgrade KubeVirt")
    if state.binding_gate_missing:
        yield Finding("binding-gate", ERROR, where, f"feature gate {kubevirt.BINDING_GATE} is missing: KubeVirt "
                      f"{'.'.join(map(str, version))} rejects VMs using network binding plugins", "macvtapctl enable")
    if state.injection_on:
        yield from _injection(s.injection, where, version)


def _injection(proof: Proof | None, where: str, version: tuple[int, int, int]) -> Iterator[Finding]:
    """KubeVirt no longer requests the device: is an injector proven to (a dry-run pod, ops/injector.prove)?"""
    gate = kubevirt.INJECTION_GATE
    # From v1.10 disabling the gate does nothing (rules/kubevirt.py gates_of): only an injector helps. Before, the
    # fix that needs no new workload; the cause names the other.
    fix = "macvtapctl install --injector" if version >= (1, 10, 0) else "macvtapctl enable"
    other = "" if version >= (1, 10, 0) else "; or deploy one: macvtapctl install --injector"
    if proof is not None and proof.verified:
        yield Finding("injection-verified", INFO, where, f"{gate} is on and an injector does KubeVirt's part: "
                      f"{proof.detail}")
    elif proof is not None and proof.state == MISSING:
        yield Finding("injection-missing", ERROR, where, f"{gate} is on, so KubeVirt does not request the macvtap "
                      f"device for VM pods, and {proof.detail}: VM pods get no device{other}", fix)
    else:
        unproven = f" (not verified: {proof.detail})" if proof is not None else ""
        yield Finding("external-injection", WARNING, where, f"{gate} is on: KubeVirt expects "
                      "network-resources-injector to add the macvtap resource to VM pods; without it they get no "
                      f"device{unproven}{other}", fix)


def _image_version(ds: dict[str, Any]) -> tuple[int, int, int] | None:
    for c in dig(ds, "spec", "template", "spec", "containers") or []:
        tag = str(c.get("image", "")).rpartition(":")[2]
        m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", tag)
        if m:
            return int(m[1]), int(m[2]), int(m[3])
    return None


def agent_health(s: Snapshot, v: View) -> Iterator[Finding]:
    """8 (cluster side): the DaemonSet, its pods, the platform."""
    if not s.agents and not s.upstream:
        yield Finding("agent-health", ERROR, ref("daemonset", identity.AGENT_NAME), "no macvtap agent or macvtap-cni "
                      "DaemonSet: nothing advertises devices or runs the CNI", "macvtapctl install --image IMAGE")
    for node, both in device_plugins.shared_nodes(v.plugins, s.agent_pods).items():
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
    if s.openshift and (s.agents or s.upstream or v.macvtap_nads):
        yield Finding("openshift", WARNING, ref("cluster", "openshift"), "OpenShift: CNAO refuses macvtap here, and "
                      "the agent needs a privileged SCC (hostNetwork, /dev, root)",
                      "oc adm policy add-scc-to-user privileged -z macvtapctl-agent -n macvtap")


def nad_content(s: Snapshot, v: View) -> Iterator[Finding]:
    """6 and 12: keys the CNI ignores, an MTU above a lower device's, promiscMode."""
    for nad, res in v.macvtap_nads:
        where = obj_ref(nad)
        conf = nadr.config_of(nad) or {}
        ignored = [k for k in CNI_IGNORES if k in conf]
        if ignored:
            yield Finding("nad-ignored-keys", WARNING, where, f"the macvtap CNI ignores {', '.join(ignored)}: the "
                          "lower device comes from the device-plugin ConfigMap, the MAC from the VM, and there is no "
                          "IPAM", nad_fix(nad, s))
        mtu = conf.get("mtu")
        lower = v.lower_of(res)
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


def l2_explainers(s: Snapshot, v: View) -> Iterator[Finding]:
    """11: what macvtap does not do, said once, before someone debugs it."""
    nads = v.macvtap_nads
    if not nads:
        return
    cfg = v.config
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
