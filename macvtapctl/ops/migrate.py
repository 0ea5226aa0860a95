"""`vm migrate`: read what the migration rules need, write the VirtualMachineInstanceMigration, follow it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from macvtapctl import identity
from macvtapctl.dig import dig
from macvtapctl.errors import MacvtapctlError, PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.follow import Watch, until
from macvtapctl.kube.lookup import find_kubevirts
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import NODE, POD, VIRTUAL_MACHINE_INSTANCE, Resource
from macvtapctl.ops.doctor import proxy_get
from macvtapctl.rules import migration

VIRTUAL_MACHINE_INSTANCE_MIGRATION = Resource("kubevirt.io", "v1", "virtualmachineinstancemigrations",
                                              "VirtualMachineInstanceMigration")


@dataclass
class Reads:
    vmi: dict[str, Any] | None
    bindings: dict[str, Any] | None
    checks: list[migration.Check]


def preflight(kube: Kube, name: str, namespace: str, to: str | None) -> Reads:
    vmi = kube.get_or_none(VIRTUAL_MACHINE_INSTANCE, name, namespace)
    kvs = find_kubevirts(kube)
    bindings = dig(kvs[0], "spec", "configuration", "network", "binding") if len(kvs) == 1 else None
    if vmi is None or dig(vmi, "status", "phase") != "Running":
        return Reads(vmi, bindings, migration.preflight(vmi, name, bindings=bindings, launcher=None, node_objs=[],
                                                        live_pods=[], agent_nodes=None, to=to))
    source = dig(vmi, "status", "nodeName")
    launchers = [p for p in kube.list(POD, namespace, label_selector=f"kubevirt.io/created-by={vmi['metadata']['uid']}")
                 if dig(p, "spec", "nodeName") == source and dig(p, "status", "phase") == "Running"]
    node_objs = kube.list(NODE)
    # Only the pods of the nodes that could take it: what holds their devices (never every pod of the cluster).
    names = [n["metadata"]["name"] for n in node_objs]
    candidates = [n for n in names if n != source and (not to or n == to)]
    live = [p for n in candidates for p in kube.list(POD, None, field_selector=f"spec.nodeName={n}")]
    agents = kube.list(POD, None, label_selector=f"app.kubernetes.io/name={identity.AGENT_NAME}")
    agent_nodes = {str(dig(p, "spec", "nodeName")) for p in agents if dig(p, "status", "phase") == "Running"}
    checks = migration.preflight(vmi, name, bindings=bindings, launcher=launchers[0] if launchers else None,
                                 node_objs=node_objs, live_pods=live, agent_nodes=agent_nodes, to=to)
    return Reads(vmi, bindings, checks)


def start(kube: Kube, vmi: dict[str, Any], to: str | None, dry_run: DryRun) -> dict[str, Any]:
    obj = migration.migration_object(vmi, to)
    if dry_run is DryRun.CLIENT:
        return obj
    try:
        return kube.create(VIRTUAL_MACHINE_INSTANCE_MIGRATION, obj, vmi["metadata"]["namespace"], dry_run=dry_run)
    except PreconditionError as exc:
        raise PreconditionError(f"cannot create a VirtualMachineInstanceMigration: {exc}") from None


def follow(kube: Kube, vmim: dict[str, Any], limit: float, on_phase: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait until the migration ends (Succeeded or Failed); `on_phase(phase)` at each new phase. Returns the
    migration object and the VMI as they were then."""
    md = vmim["metadata"]
    seen: list[str] = []

    def progress(caches: dict[str, dict[str, dict[str, Any]]]) -> None:
        obj = caches["vmim"].get(md["name"])
        phase = migration.phase_of(obj) if obj else "gone"
        if not seen or seen[-1] != phase:
            seen.append(phase)
            on_phase(phase)

    def ended(caches: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any] | None:
        obj = caches["vmim"].get(md["name"])
        if obj is None:
            raise PreconditionError(f"migration {md['name']} was deleted before it ended (the migration is "
                                    "aborted: KubeVirt keeps the VM where it was)")
        return obj if migration.phase_of(obj) in migration.DONE_PHASES else None

    final = until(kube, [Watch("vmim", VIRTUAL_MACHINE_INSTANCE_MIGRATION, md["namespace"],
                               {"field_selector": f"metadata.name={md['name']}"})],
                  ended, limit, f"migration {md['name']} to end", progress)
    vmi = kube.get(VIRTUAL_MACHINE_INSTANCE, final["spec"]["vmiName"], md["namespace"])
    return final, vmi


HANDOFF_WAIT = 3.0  # seconds the source agent may take to report a hand-off KubeVirt already calls done


def handoffs(kube: Kube, node: str, macs: set[str], since: str | None) -> dict[str, Any]:
    """What the agent on `node` (the source) did with the VM's links: its node report's hand-offs and reverts of
    these MACs since the migration started ({"node", "events"}), or why that cannot be read ({"node", "error"})."""
    agents = [p for p in kube.list(POD, None, label_selector=f"app.kubernetes.io/name={identity.AGENT_NAME}")
              if dig(p, "spec", "nodeName") == node and dig(p, "status", "phase") == "Running"]
    if not agents:
        return {"node": node, "error": "no macvtapctl agent runs on this node (upstream macvtap-cni hands nothing "
                                       "off: kubevirt#5912)"}
    deadline = time.monotonic() + HANDOFF_WAIT
    while True:
        try:
            report = proxy_get(kube, agents[0], identity.METRICS_PORT, "doctor") or {}
        except MacvtapctlError as exc:
            return {"node": node, "error": f"cannot read the agent's report: {exc.message}"}
        events = migration.handoff_events(report, macs, since)
        if events or time.monotonic() > deadline:
            return {"node": node, "events": events}
        time.sleep(0.3)
