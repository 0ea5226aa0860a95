"""`macvtapctl doctor`: why a VM on macvtap has no network, cluster-wide or for one VM."""

from __future__ import annotations

from typing import Annotated

import typer

from macvtapctl.cli.common import application
from macvtapctl.errors import ExitCode, UsageError

HELP = """Find every known way a macvtap VM fails to get on the network, name the cause, give the fix. Reads the
KubeVirt CR, the device-plugin ConfigMap, the agent (or macvtap-cni) DaemonSet and pods, nodes, NADs, VMs, VMIs
and virt-launcher pods, plus each node agent's own checks (through the API server's pod proxy). Read-only.

With a VM NAME: only the chain of that VM (binding, NADs, resources, nodes, its VMI and pod). Exit code 0 when
no finding is an error, 8 when one is. Finding ids are stable (docs/doctor.md), for CI allow-lists."""


def doctor(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[VM]", help="Narrow to this VM's chain.")] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A",
                                                 help="Every namespace (the default without a VM).")] = False,
    all_vms: Annotated[bool, typer.Option("--all", help="Every VM (the default without a VM).")] = False,
    probe_dhcp: Annotated[str | None, typer.Option(
        "--probe-dhcp", metavar="RESOURCE",
        help="Also ask each node's agent to send one DHCPDISCOVER on RESOURCE's lower device (a throwaway macvtap, "
             "removed after) and report whether a DHCP server offered an address, and which.")] = None,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "wide", "json", "yaml"))
    if name and (all_namespaces or all_vms):
        raise UsageError("give a VM NAME, or --all / -A, not both")
    if probe_dhcp is not None:
        from macvtapctl import validate

        problem = validate.resource_name_problem(probe_dhcp, 1)
        if problem:
            raise UsageError(f'invalid --probe-dhcp "{probe_dhcp}": {problem}')
    printer = cli.printer
    from macvtapctl.ops import doctor as ops

    with cli.connect() as kube:
        findings, snap, _ = ops.run(kube, vm=(cli.namespace, name) if name else None, dhcp_resource=probe_dhcp)
    counts = {sev: sum(f.severity == sev for f in findings) for sev in ("error", "warning", "info")}
    if fmt in ("json", "yaml"):
        printer.document({"apiVersion": "macvtapctl.io/v1", "kind": "DoctorReport",
                          "target": f"{cli.namespace}/{name}" if name else None,
                          "summary": {**counts, "nodesReporting": sorted(snap.reports),
                                      "nodesNotReporting": dict(sorted(snap.report_errors.items())),
                                      # where each reporting agent's configuration comes from (api, file)
                                      "configSources": {n: ((r or {}).get("configSource") or {}).get("source")
                                                        for n, r in sorted(snap.reports.items())}},
                          "findings": [f.as_dict() for f in findings]}, fmt)
    elif findings:
        wide = fmt == "wide"
        printer.table(["severity", "id", "object", "cause"] + (["fix"] if wide else []),
                      [[f.severity, f.id, f.object, f.cause] + ([f.fix or ""] if wide else []) for f in findings])
        if not wide:  # each fix once, with how many objects it applies to
            fixes: dict[tuple[str, str], list[str]] = {}
            for f in findings:
                if f.fix and f.severity != "info":
                    fixes.setdefault((f.id, f.fix), []).append(f.object)
            for (fid, fix), objects in fixes.items():
                on = objects[0] if len(objects) == 1 else f"{len(objects)} objects"
                printer.info(f"fix {fid} ({on}): {fix}")
    printer.info(f"{len(findings)} finding(s): {counts['error']} error(s), {counts['warning']} warning(s), "
                 f"{counts['info']} info")
    if counts["error"]:
        raise typer.Exit(int(ExitCode.FINDINGS))
