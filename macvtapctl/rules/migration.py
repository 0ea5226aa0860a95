"""Live migration of a VM on macvtap: whether it can move (`vm migrate --check`, and before `vm migrate` writes),
what the migration object is, and how its progress reads. Pure: plain dicts in, checks and lines out.

What a macvtap VM needs to move with its network (docs/migration.md): KubeVirt's LiveMigratable condition; a MAC on
every macvtap interface (else the target's macvtap gets a random one while the guest keeps its own, and nothing
reaches it after the move); another schedulable node that advertises every macvtap resource the VM holds, with a
device free; the agent there (which hands the L2 over)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from macvtapctl.dig import dig
from macvtapctl.rules import in_use, nodes, vmlint

HOSTNAME_LABEL = "kubernetes.io/hostname"
DONE_PHASES = ("Succeeded", "Failed")
# KubeVirt's VirtualMachineInstanceMigration phases, in order (kubevirt.io/api core/v1 types.go).
PHASES = ("Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Succeeded", "Failed")

RUNNING, MIGRATABLE, MAC, TARGET, AGENT = "running", "live-migratable", "mac", "target-node", "agent"


@dataclass(frozen=True)
class Check:
    id: str
    ok: bool
    detail: str
    blocking: bool = True  # False: said, but the migration may still go ahead


def macvtap_interfaces(vmi: dict[str, Any], bindings: dict[str, Any] | None) -> list[dict[str, Any]]:
    facts = vmlint.Facts(bindings=bindings)
    return [i for i in dig(vmi, "spec", "domain", "devices", "interfaces") or []
            if vmlint.is_macvtap_interface(i, facts)]


def condition(vmi: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in dig(vmi, "status", "conditions") or [] if c.get("type") == kind), None)


def preflight(vmi: dict[str, Any] | None, name: str, *, bindings: dict[str, Any] | None,
              launcher: dict[str, Any] | None, node_objs: list[dict[str, Any]], live_pods: list[dict[str, Any]],
              agent_nodes: set[str] | None, to: str | None) -> list[Check]:
    """Every check, in the order a user fixes them; a VM that does not run stops at the first."""
    if vmi is None or dig(vmi, "status", "phase") != "Running":
        phase = dig(vmi or {}, "status", "phase") or "no VMI"
        return [Check(RUNNING, False, f"VM {name} is not running ({phase}): only a running VM migrates")]
    source = str(dig(vmi, "status", "nodeName") or "")
    checks = [Check(RUNNING, True, f"running on node {source}")]
    live = condition(vmi, "LiveMigratable")
    if live is None or live.get("status") == "True":
        checks.append(Check(MIGRATABLE, True, "KubeVirt: LiveMigratable" if live else
                            "KubeVirt reports no LiveMigratable condition yet"))
    else:
        checks.append(Check(MIGRATABLE, False, f"KubeVirt: not live-migratable: {live.get('reason', '')}: "
                            f"{live.get('message', '')}".rstrip(": ")))
    ifaces = macvtap_interfaces(vmi, bindings)
    without = [i["name"] for i in ifaces if not i.get("macAddress")]
    if without:
        checks.append(Check(MAC, False, f"interface(s) {', '.join(without)} have no macAddress: the target's macvtap "
                            "would get a random MAC while the guest keeps its own, and nothing would reach it after "
                            "the move (set one: `macvtapctl vm check` names the field)"))
    else:
        checks.append(Check(MAC, True, f"{len(ifaces)} macvtap interface(s), each with a MAC"))
    needed = in_use.units(launcher) if launcher else {}
    checks.append(_target(source, to, needed, node_objs, live_pods))
    if agent_nodes is not None:
        fit = _fitting(source, to, needed, node_objs, live_pods)
        without_agent = [n for n in fit if n not in agent_nodes]
        if fit and len(without_agent) == len(fit):
            checks.append(Check(AGENT, False, f"no macvtapctl agent on {', '.join(without_agent)}: the move works, "
                                "but nobody hands the L2 over (peers on the source node lose the VM until its "
                                "source pod ends, kubevirt#5912)", blocking=False))
        elif fit:
            checks.append(Check(AGENT, True, f"the agent runs on {', '.join(n for n in fit if n in agent_nodes)}"))
    return checks


def _fitting(source: str, to: str | None, needed: dict[str, int], node_objs: list[dict[str, Any]],
             live_pods: list[dict[str, Any]]) -> list[str]:
    held = in_use.holders(live_pods)
    out = []
    for node in node_objs:
        name = node["metadata"]["name"]
        if name == source or (to and name != to) or not nodes.schedulable(node):
            continue
        if all(nodes.allocatable(node, res) - len(held.get((name, res), [])) >= n for res, n in needed.items()):
            out.append(name)
    return out


def _target(source: str, to: str | None, needed: dict[str, int], node_objs: list[dict[str, Any]],
            live_pods: list[dict[str, Any]]) -> Check:
    fit = _fitting(source, to, needed, node_objs, live_pods)
    wanted = ", ".join(f"{n} {r}" for r, n in sorted(needed.items())) or "no macvtap device"
    if fit:
        return Check(TARGET, True, f"{', '.join(fit)} can take it ({wanted})")
    names = {n["metadata"]["name"] for n in node_objs}
    if to and to not in names:
        return Check(TARGET, False, f"node {to} does not exist")
    if to and to == source:
        return Check(TARGET, False, f"the VM already runs on node {to}")
    held = in_use.holders(live_pods)
    why = []
    for node in node_objs:
        name = node["metadata"]["name"]
        if name == source or (to and name != to):
            continue
        if not nodes.schedulable(node):
            why.append(f"{name}: not schedulable")
            continue
        short = [f"{r} ({nodes.allocatable(node, r) - len(held.get((name, r), []))} free of "
                 f"{nodes.allocatable(node, r)})" for r, n in sorted(needed.items())
                 if nodes.allocatable(node, r) - len(held.get((name, r), [])) < n]
        why.append(f"{name}: {', '.join(short)}")
    return Check(TARGET, False, f"no other node can take it (needs {wanted}): " + ("; ".join(why) or "no other node"))


def migration_object(vmi: dict[str, Any], to: str | None) -> dict[str, Any]:
    """The VirtualMachineInstanceMigration `virtctl migrate` writes (a generated name), with `--to` as an added node
    selector (KubeVirt v1.5+)."""
    md = vmi["metadata"]
    spec: dict[str, Any] = {"vmiName": md["name"]}
    if to:
        spec["addedNodeSelector"] = {HOSTNAME_LABEL: to}
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"generateName": f"{md['name']}-migrate-", "namespace": md["namespace"]}, "spec": spec}


def phase_of(vmim: dict[str, Any]) -> str:
    return str(dig(vmim, "status", "phase") or "Pending")


def macs(vmi: dict[str, Any], bindings: dict[str, Any] | None) -> dict[str, str]:
    """Interface name -> MAC, for the macvtap interfaces, as the VMI's status reports them (the guest's view)."""
    names = {i["name"] for i in macvtap_interfaces(vmi, bindings)}
    return {str(i.get("name")): str(i.get("mac") or "") for i in dig(vmi, "status", "interfaces") or []
            if i.get("name") in names}


def outcome(vmim: dict[str, Any], before: dict[str, Any], after: dict[str, Any],
            bindings: dict[str, Any] | None) -> dict[str, Any]:
    """What `vm migrate --wait` reports: the phases with their times, source and target, KubeVirt's migration
    timestamps, and each macvtap interface's MAC before and after."""
    state = dig(after, "status", "migrationState") or {}
    transitions = [{"phase": t.get("phase"), "at": t.get("phaseTransitionTimestamp")}
                   for t in dig(vmim, "status", "phaseTransitionTimestamps") or []]
    return {"migration": vmim["metadata"]["name"], "phase": phase_of(vmim), "phases": transitions,
            "source": dig(before, "status", "nodeName"), "target": state.get("targetNode"),
            "node": dig(after, "status", "nodeName"),
            "startTimestamp": state.get("startTimestamp"), "endTimestamp": state.get("endTimestamp"),
            "targetNodeDomainReadyTimestamp": state.get("targetNodeDomainReadyTimestamp"),
            "failed": bool(state.get("failed")), "failureReason": state.get("failureReason"),
            "macs": {n: {"before": m, "after": macs(after, bindings).get(n, "")}
                     for n, m in macs(before, bindings).items()}}


def handoff_events(report: dict[str, Any], macs: set[str], since: str | None) -> list[dict[str, Any]]:
    """The agent report's hand-offs and reverts of these MACs at or after `since` (RFC 3339, KubeVirt's
    migration start; the agent's times carry milliseconds, KubeVirt's seconds: compared by the second)."""
    wanted = {m.lower() for m in macs}
    return [e for e in report.get("handoffs") or [] if str(e.get("mac", "")).lower() in wanted
            and (since is None or str(e.get("time", ""))[:19] >= since[:19])]
