"""doctor's checks on the VMs: KubeVirt's view of their macvtap interfaces, their MACs end to end, whether they
could move with their network (the rules 5, 10 and 15 of docs/doctor.md); and one VM's chain, to narrow the
findings to it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from macvtapctl import identity
from macvtapctl.dig import dig
from macvtapctl.rules import dpconfig, in_use, migration, nodes, vmlint
from macvtapctl.rules import nad as nadr
from macvtapctl.rules.doctor.finding import ERROR, INFO, WARNING, Finding, obj_ref, ref
from macvtapctl.rules.doctor.snapshot import Snapshot
from macvtapctl.rules.doctor.view import View

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"


def vm_spec(s: Snapshot, v: View) -> Iterator[Finding]:
    """5 and 10 (across VMs): KubeVirt's view of each VM's macvtap interfaces (vmlint's rules)."""
    facts = vmlint.Facts(bindings=v.bindings if v.kubevirt else None,
                         nads={(n["metadata"]["namespace"], n["metadata"]["name"]): n for n in s.nads},
                         exposed=v.config if v.configmap is not None else None)
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


def mac_consistency(s: Snapshot, v: View) -> Iterator[Finding]:
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


MIGRATING = ("LiveMigrate", "LiveMigrateIfPossible")  # evictionStrategy values that move a VM on a drain


def migration_readiness(s: Snapshot, v: View) -> Iterator[Finding]:
    """15. A running VM on macvtap that could not move with its network (docs/migration.md): KubeVirt says it is not
    live-migratable (its reason), or no other schedulable node advertises a macvtap resource it holds. A warning
    when its evictionStrategy migrates it on a drain (the drain then blocks, or shuts it down), else info."""
    bindings = v.bindings
    cluster_strategy = dig(v.kubevirt or {}, "spec", "configuration", "evictionStrategy")
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
        lacking = sorted(r for r in needed if not any(v.advertised[n["metadata"]["name"]].get(r) for n in ready
                                                      if n["metadata"]["name"] != source))
        if lacking:
            yield Finding("migration-one-node", severity, where, f"no schedulable node but {source} advertises "
                          f"{', '.join(repr(r) for r in lacking)}: the VM cannot move with its network (another node "
                          f"needs the lower device and the agent){on_drain}", None,
                          refs=tuple(ref("resource", r) for r in lacking))


def _running_with_macs(s: Snapshot, v: View) -> Iterator[tuple[dict[str, Any], set[str], Any, dict[str, Any]]]:
    """Each running VMI with its macvtap interfaces' MACs (lower case), its node and its migration state."""
    for vmi in s.vmis:
        if dig(vmi, "status", "phase") != "Running":
            continue
        macs = {str(i["macAddress"]).lower() for i in migration.macvtap_interfaces(vmi, v.bindings)
                if i.get("macAddress")}
        yield vmi, macs, dig(vmi, "status", "nodeName"), dig(vmi, "status", "migrationState") or {}


def migration_source_up(s: Snapshot, v: View) -> Iterator[Finding]:
    """15 (#5912 state): a node whose agent still has a running VM's MAC on a link in the L2 domain while KubeVirt
    runs the VM on another node — its neighbours on that NIC reach the stale link, not the VM, until the pod ends.
    A migration's target node carries the MAC (silent) before the guest moves: not a finding while it runs."""
    for vmi, macs, here, state in _running_with_macs(s, v):
        moving_to = state.get("targetNode") if not state.get("completed") else None
        md = vmi["metadata"]
        for node, report in sorted(s.reports.items()):
            if node in (here, moving_to):
                continue
            for link in (report or {}).get("links") or []:
                if str(link.get("mac", "")).lower() in macs:
                    yield Finding("migration-source-up", WARNING, ref("virtualmachineinstance", md["name"],
                                                                      md.get("namespace")),
                                  f"KubeVirt runs the VM on node {here}, but node {node} still has its MAC "
                                  f"{link['mac']} on {link.get('ifname')} (lower device {link.get('lower')}) in the "
                                  f"L2 domain: the VMs beside it on {node} reach that stale link, not the VM, until "
                                  "its pod ends (kubevirt#5912); the agent there saw no announcement of the VM from "
                                  "the LAN", f"kubectl get pods -n {md.get('namespace')} -l vm.kubevirt.io/name="
                                  f"{md['name']} -o wide   (the source pod on {node} should end on its own; "
                                  "if it hangs, delete it. A node without the hand-off: migration-handoff-off)",
                                  refs=(ref("node", node),))


def migration_target_parked(s: Snapshot, v: View) -> Iterator[Finding]:
    """16: the agent on the node KubeVirt runs a VM on holds the VM's link parked (down, as a migration's target
    waits for its guest) while no migration to that node runs: the VM has no network there. The guest's first frame
    sets a parked link up, so this is an agent that missed it (its hand-off thread stopped, or a restart lost it)."""
    for vmi, macs, here, state in _running_with_macs(s, v):
        if state.get("targetNode") == here and not (state.get("completed") or state.get("endTimestamp")):
            continue  # KubeVirt has moved it here and the migration's end is not written yet
        md = vmi["metadata"]
        for link in (s.reports.get(here) or {}).get("parked") or []:
            if str(link.get("mac", "")).lower() in macs:
                yield Finding("migration-target-parked", ERROR, ref("virtualmachineinstance", md["name"],
                                                                    md.get("namespace")),
                              f"KubeVirt runs the VM on node {here}, but the agent there holds its link "
                              f"{link.get('ifname')} with MAC {link['mac']} parked (down, as a migration's target "
                              "waits for its guest), and no migration to the node is running: the VM has no "
                              "network on that NIC",
                              f"kubectl logs -n <agent namespace> <the agent pod on {here}>   (look for 'migration "
                              "target'); restarting that agent pod parks the link again and its guest's next frame "
                              "sets it up", refs=(ref("node", here),))


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
