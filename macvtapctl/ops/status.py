"""`status`: the macvtap chain as tables — a view of doctor's snapshot, judged by doctor's rules.

One judge: `status` reads what `doctor` reads (ops/doctor.py) and its problems are doctor's error findings, so
the chain is "complete" exactly when `doctor` finds no error. The view adds only what the tables show: KubeVirt's
version and bindings, the device-plugin ConfigMap in effect, each plugin and where each node's agent reads its
configuration, capacity per node and resource with the devices pods hold there, and the NADs. Read-only.
"""

from __future__ import annotations

from typing import Any

from macvtapctl import validate
from macvtapctl.dig import dig
from macvtapctl.kube.client import Kube
from macvtapctl.ops import doctor as doctor_ops
from macvtapctl.rules import daemonset, device_plugins, doctor, dpconfig, in_use, kubevirt
from macvtapctl.rules import nad as nadr


def collect(kube: Kube) -> dict[str, Any]:
    """Everything status shows, as plain data, plus the problems (doctor's errors)."""

    findings, s = doctor_ops.run(kube)
    return view(s, findings)


def view(s: doctor.Snapshot, findings: list[doctor.Finding]) -> dict[str, Any]:
    """The tables of a snapshot (pure); `findings` are doctor's on the same snapshot."""
    problems = [problem(f) for f in findings if f.severity == doctor.ERROR]
    cm, cfg, _ = doctor.config_of(s)
    advertised = _advertised(s)
    return {"kubevirt": _kubevirt(s), "deviceplugin": _deviceplugin(s, cm, cfg), "agents": _agents(s),
            "nodes": _nodes(s), "nads": _nads(s, cfg, advertised), "problems": problems,
            "warnings": [problem(f) for f in findings if f.severity == doctor.WARNING], "complete": not problems}


def problem(f: doctor.Finding) -> str:
    """A doctor finding as one line: the object, the cause, and the fix when there is one."""
    return f"{f.object}: {f.cause}" + (f" (fix: {f.fix})" if f.fix else "")


def _kubevirt(s: doctor.Snapshot) -> dict[str, Any]:
    kv = s.kubevirts[0] if len(s.kubevirts) == 1 else None
    if kv is None:
        return {"installed": False, "version": None, "phase": None, "macvtapBindings": []}
    version = kubevirt.observed_version_of(kv)
    tap = sorted(n for n, b in doctor.bindings_of(s).items() if (b or {}).get("domainAttachmentType") == "tap")
    out: dict[str, Any] = {"installed": True, "version": version, "phase": dig(kv, "status", "phase") or None,
                           "macvtapBindings": tap}
    parsed = kubevirt.parse_version(version)
    if parsed and kubevirt.gates_of(kv, parsed).injection_on:
        out["note"] = (f"{kubevirt.INJECTION_GATE} is on: network-resources-injector must add the macvtap resource "
                       "to VM pods")
    return out


def _deviceplugin(s: doctor.Snapshot, cm: dict[str, Any] | None, cfg: dpconfig.Config | None) -> dict[str, Any]:
    every = [{"namespace": c["metadata"]["namespace"], "name": c["metadata"]["name"]} for c in s.configmaps]
    return {"namespace": cm["metadata"]["namespace"] if cm else None,
            "configMap": cm["metadata"]["name"] if cm else (s.cnao_configmap or dpconfig.CONFIGMAP_NAME),
            "present": cm is not None, "exposeAll": bool(cfg and cfg.expose_all),
            "entries": [] if cfg is None else cfg.items,
            "warnings": [] if cfg is None else [n.text for n in cfg.notices], "configMaps": every}


def _agents(s: doctor.Snapshot) -> list[dict[str, Any]]:
    """Every macvtap device-plugin DaemonSet, the ConfigMap it reads, and (the agent) where each node's copy
    reads it from: `api`, `file`, or null for a node without a report."""

    rows = []
    for ds in [*s.agents, *s.upstream]:
        p = device_plugins.of(ds)
        if p is None:
            continue
        _, desired, ready, _ = daemonset.rollout(ds)
        row: dict[str, Any] = {"namespace": p.namespace, "name": p.name, "kind": p.kind, "desired": desired,
                               "ready": ready, "configMap": p.configmap}
        if p.kind == device_plugins.AGENT:
            nodes = device_plugins.nodes_of(p, s.agent_pods)
            row["configSources"] = {n: ((s.reports.get(n) or {}).get("configSource") or {}).get("source")
                                    for n in nodes}
        rows.append(row)
    return rows


def _advertised(s: doctor.Snapshot) -> set[str]:
    prefix = validate.RESOURCE_PREFIX + "/"
    return {k[len(prefix):] for n in s.nodes for k, v in (dig(n, "status", "allocatable") or {}).items()
            if k.startswith(prefix) and str(v) not in ("0", "")}


def _nodes(s: doctor.Snapshot) -> list[dict[str, Any]]:
    """Per node and resource: capacity, allocatable, and how many devices the pods there hold (in_use's rule)."""
    held = in_use.holders(s.live)
    prefix = validate.RESOURCE_PREFIX + "/"
    rows = []
    for node in s.nodes:
        cap, alloc = dig(node, "status", "capacity") or {}, dig(node, "status", "allocatable") or {}
        name = node["metadata"]["name"]
        for key in sorted(k for k in set(cap) | set(alloc) if k.startswith(prefix)):
            res = key[len(prefix):]
            rows.append({"node": name, "resource": res, "capacity": cap.get(key, "0"),
                         "allocatable": alloc.get(key, "0"), "inUse": len(held.get((name, res), []))})
    return rows


def _nads(s: doctor.Snapshot, cfg: dpconfig.Config | None, advertised: set[str]) -> list[dict[str, Any]]:

    names = {e.name for e in dpconfig.usable_entries(cfg)[0]} if cfg is not None else set()
    rows = []
    for n in sorted((n for n in s.nads if nadr.is_macvtap(n)),
                    key=lambda n: (n["metadata"]["namespace"], n["metadata"]["name"])):
        res = nadr.resource_of(n)
        rows.append({"namespace": n["metadata"]["namespace"], "name": n["metadata"]["name"], "resource": res,
                     "exposed": bool(cfg is not None and (cfg.expose_all or res in names)),
                     "advertised": res in advertised})
    return rows
