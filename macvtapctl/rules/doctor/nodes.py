"""doctor's checks on the nodes: what each resource offers on them, the agents' own reports (and nodes without
one), resources no configuration serves, the DHCP probe (the rules 1, 3, 7, 8, 9, 11, 12 and 14 of
docs/doctor.md, node side)."""

from __future__ import annotations

from collections.abc import Iterator

import jsonpointer

from macvtapctl import validate
from macvtapctl.dig import dig
from macvtapctl.rules import nad as nadr
from macvtapctl.rules import nodes
from macvtapctl.rules.doctor.finding import ERROR, INFO, WARNING, Finding, nad_fix, obj_ref, ref
from macvtapctl.rules.doctor.snapshot import Snapshot
from macvtapctl.rules.doctor.view import View


def resource_capacity(s: Snapshot, v: View) -> Iterator[Finding]:
    """1. A NAD's resource has no devices on the nodes where its VMs can run."""
    cfg = v.config
    ready = [n for n in s.nodes if nodes.schedulable(n)]
    for nad, res in v.macvtap_nads:
        if res is None:
            continue
        where = obj_ref(nad)
        empty = [n["metadata"]["name"] for n in ready if not v.advertised[n["metadata"]["name"]].get(res)]
        if ready and not empty:
            continue
        lower = v.lower_of(res)
        why = []
        for node in empty:
            for c in [] if node in v.stale_reports else (s.reports.get(node) or {}).get("checks") or []:
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


def node_agents(s: Snapshot, v: View) -> Iterator[Finding]:
    """3, 7, 8, 9, 11 and 12 (node side): the agents' own reports; nodes without one are named."""
    ids = {"tap-ownership": ERROR, "kind-dev": ERROR, "agent-health": ERROR, "leaked-links": WARNING,
           "l2-nested-lower": WARNING, "dp-config": None, "resource-capacity": None}
    owned = [n for n, _ in v.macvtap_nads if {"owner", "group"} & set(nadr.config_of(n) or {})]
    fixes = {"tap-ownership": " && ".join(nad_fix(n, s) for n in owned) if owned else
             "macvtapctl install (its CNI chowns /dev/tapN to 107:107, qemu)"}
    for check_id, severity in ids.items():
        if severity is None:  # folded into the cluster-side findings of the same id
            continue
        for node, c in v.report_checks(s, check_id):
            if c.get("status") == "ok":
                continue
            sev = severity if c.get("status") == "error" else WARNING
            fix = fixes.get(check_id)
            if check_id == "kind-dev":
                fix = ("macvtapctl kind-config (recreate the KinD cluster with it)" if _kind_node(s, node) else
                       "mount the node's /dev into the agent pod (hostPath /dev, as macvtapctl install does)")
            yield Finding(check_id, sev, ref("node", node), f"{c.get('check')}: {c.get('detail')}", fix)
    for node in sorted(s.reports):
        if node in v.stale_reports:
            yield Finding("node-report-stale", INFO, ref("node", node), "the agent's last report judged an older "
                          "device-plugin configuration (each agent reports once a minute): its configuration checks "
                          "are left out", "macvtapctl doctor   (again in a minute)")
    yield from config_source(s)
    for node, report in sorted(s.reports.items()):
        if report and report.get("virtualization"):
            yield Finding("virtualised-node", WARNING, ref("node", node),
                          f"the node is a VM ({report['virtualization']}): the outer switch must allow "
                          "promiscuous mode / forged transmits, or frames for VM MACs never arrive")
    for node, report in sorted(s.reports.items()):
        handoff = (report or {}).get("handoff") or {}
        if handoff.get("enabled") is False:  # reports of agents before the hand-off carry no `handoff`
            yield Finding("migration-handoff-off", WARNING, ref("node", node),
                          f"the agent cannot hand a migrating VM's network over on this node: {handoff.get('why')}; "
                          "a VM that leaves it stays on its source link for its neighbours here until the source pod "
                          "ends (kubevirt#5912)", "run the agent with NET_RAW (macvtapctl install's DaemonSet has it)")
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


def stale_resources(s: Snapshot, v: View) -> Iterator[Finding]:
    """9: macvtap resources left on nodes that no configuration serves (the kubelet never removes them)."""
    cm, cfg = v.configmap, v.config
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


def dhcp_probe(s: Snapshot, v: View) -> Iterator[Finding]:
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


def _kind_node(s: Snapshot, node: str) -> bool:
    n = next((n for n in s.nodes if n["metadata"]["name"] == node), None)
    return str(dig(n, "spec", "providerID") or "").startswith("kind://") if n else False
