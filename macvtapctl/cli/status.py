"""`macvtapctl status`: the whole macvtap chain at a glance, and an exit code CI can trust."""

from __future__ import annotations

from typing import Any

import typer

from macvtapctl.cli.common import application
from macvtapctl.errors import ExitCode

HELP = """Show the whole chain: KubeVirt version and binding/gate state, the device-plugin ConfigMap, the agent
(or upstream macvtap-cni) DaemonSet, per node and resource the capacity, allocatable and in use (the devices
its pods hold, virt-launchers and others), and the NADs with the resource each points to. Exit code 0 only when
the chain is complete; 8 otherwise."""


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
    if dp["namespace"] is None and dp.get("configMaps"):  # several: none is "the" one; name them all
        where = ", ".join(f"{c['namespace']}/{c['name']}" for c in dp["configMaps"])
        lines.append(f"Device plugin:   {len(dp['configMaps'])} ConfigMaps: {where}")
    else:
        lines.append(f"Device plugin:   {dp['namespace']}/{dp['configMap']}: "
                     f"{entries if dp['present'] else 'missing'}")
    agents = ", ".join(f"{a['namespace']}/{a['name']} ({a['kind']}) {a['ready']}/{a['desired']} ready, reads "
                       f"{a['configMap'] or 'no ConfigMap'}" for a in doc["agents"]) or "none"
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
    for w in dp.get("warnings") or []:
        printer.warn(w)
    if doc["problems"]:
        for p in doc["problems"]:
            printer.warn(p)
    else:
        printer.info("the macvtap chain is complete")
