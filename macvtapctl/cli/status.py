"""`macvtapctl status`: the whole macvtap chain at a glance, and an exit code CI can trust."""

from __future__ import annotations

from typing import Any

import typer

from macvtapctl.cli.common import application
from macvtapctl.errors import ExitCode

HELP = """Show the whole chain: KubeVirt version and binding/gate state, the device-plugin ConfigMap, the agent
(or upstream macvtap-cni) DaemonSet and where each node's agent reads the ConfigMap (the API server or the
mounted file), per node and resource the capacity, allocatable and in use (the devices its pods hold,
virt-launchers and others), and the NADs with the resource each points to. Its problems are doctor's errors:
exit code 0 only when the chain is complete (doctor finds no error); 8 otherwise."""


def status(ctx: typer.Context) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "wide", "json", "yaml"))
    printer = cli.printer
    with cli.connect() as kube:
        from macvtapctl.ops.status import collect

        doc = collect(kube)
    if fmt in ("json", "yaml"):
        printer.document(doc, fmt)
    else:
        _tables(printer, doc, wide=fmt == "wide")
    if not doc["complete"]:
        raise typer.Exit(int(ExitCode.FINDINGS))


def _sources(agent: dict[str, Any]) -> str:
    """Where the agent's pods read the ConfigMap: through the API server, or the mounted file (late by the
    kubelet's sync period), per node."""
    found = agent.get("configSources") or {}
    if not found:
        return ""
    api = [n for n, src in found.items() if src == "api"]
    text = f" (through the API server on {len(api)}/{len(found)} node(s)"
    other = sorted(n for n in found if found[n] != "api")
    if other:
        text += "; " + ", ".join(f"{n}: {found[n] or 'no report'}" for n in other[:5]) + (
            " ..." if len(other) > 5 else "")
    return text + ")"


def _tables(printer: Any, doc: dict[str, Any], *, wide: bool) -> None:
    kv = doc["kubevirt"]
    phase = f" ({kv['phase']})" if kv.get("phase") else ""
    lines = [f"KubeVirt:        {kv['version'] or 'not installed'}{phase}; macvtap bindings: "
             f"{', '.join(kv['macvtapBindings']) or 'none'}"]
    if kv.get("note"):
        lines.append(f"                 {kv['note']}")
    dp = doc["deviceplugin"]
    entries = "[] (every physical link)" if dp["exposeAll"] else ", ".join(
        f"{e.get('name')}={e.get('lowerDevice')}" for e in dp["entries"]) or "none"
    where = f"{dp['namespace']}/{dp['configMap']}" if dp["present"] else f"{dp['configMap']}"
    lines.append(f"Device plugin:   {where}: {entries if dp['present'] else 'missing'}")
    if len(dp.get("configMaps") or []) > 1:  # several: name them all (doctor's dp-config-several judges them)
        every = ", ".join(f"{c['namespace']}/{c['name']}" for c in dp["configMaps"])
        lines.append(f"                 {len(dp['configMaps'])} ConfigMaps: {every}")
    agents = ", ".join(f"{a['namespace']}/{a['name']} ({a['kind']}) {a['ready']}/{a['desired']} ready, reads "
                       f"{a['configMap'] or 'no ConfigMap'}{_sources(a)}" for a in doc["agents"]) or "none"
    lines.append(f"Agent:           {agents}")
    printer.data("\n".join(lines) + "\n\n")
    if doc["nodes"]:
        printer.table(["node", "resource", "capacity", "allocatable", "in use"],
                      [[r["node"], r["resource"], r["capacity"], r["allocatable"], r["inUse"]] for r in doc["nodes"]])
        printer.data("\n")
    if doc["nads"]:
        printer.table(["namespace", "nad", "resource", "exposed", "advertised"],
                      [[n["namespace"], n["name"], n["resource"], "yes" if n["exposed"] else "NO",
                        "yes" if n["advertised"] else "NO"] for n in doc["nads"]])
        printer.data("\n")
    for w in doc.get("warnings") or []:  # doctor's warnings (the ConfigMap's quirks among them)
        printer.warn(w)
    if doc["problems"]:
        for p in doc["problems"]:
            printer.warn(p)
    else:
        printer.info("the macvtap chain is complete")
