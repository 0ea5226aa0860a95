"""`nad create|list|delete`: NetworkAttachmentDefinitions pointing at exposed macvtap resources."""

from __future__ import annotations

from typing import Annotated

import typer

from macvtapctl.cli.common import (
    WRITE_FORMATS,
    CniVersionOption,
    DryRunOption,
    ForceOption,
    application,
    emit,
)
from macvtapctl.cli.settings import parse_dry_run
from macvtapctl.manifests import nad as nadm
from macvtapctl.rules import nad as nadr

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)  # help: the registry's summary

CREATE_HELP = """Create (or update) a NetworkAttachmentDefinition for macvtap resource R.

Sets the annotation k8s.v1.cni.cncf.io/resourceName: macvtap.network.kubevirt.io/R and a CNI config with
only the keys the macvtap CNI reads. VMs can use a NAD from their own namespace or from "default"."""


@app.command("create", help=CREATE_HELP)
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The NetworkAttachmentDefinition's name.")],
    resource: Annotated[str, typer.Option("--resource", "-r", metavar="R",
                                          help="Exposed resource name (macvtap.network.kubevirt.io/R).")],
    mtu: Annotated[int | None, typer.Option("--mtu", help="MTU of the pod interface (68-65535).")] = None,
    promisc: Annotated[bool, typer.Option("--promisc", help="Promiscuous mode (LLDP, multicast).")] = False,
    cni_version: CniVersionOption = nadm.DEFAULT_CNI_VERSION,
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(WRITE_FORMATS)
    dry = parse_dry_run(dry_run)
    nadm.check_inputs(name, resource, mtu=mtu, cni_version=cni_version)  # before the kubeconfig is read
    obj = nadm.render(name, cli.namespace, resource, mtu=mtu, promisc=promisc, cni_version=cni_version)
    printer = cli.printer
    with cli.connect() as kube:
        from macvtapctl.ops import nad as ops

        result = ops.create(kube, printer, dry, obj, force=force)
    emit(printer, fmt, [result])


@app.command("list", help="List macvtap NADs with the resource each points to and whether it is exposed.")
def list_(
    ctx: typer.Context,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "wide", "json", "yaml", "name"))
    printer = cli.printer
    from macvtapctl.kube.resources import NAD

    namespace = None if all_namespaces else cli.namespace
    with cli.connect() as kube:
        nads = [n for n in kube.list(NAD, namespace) if nadr.is_macvtap(n)]
        if fmt in ("json", "yaml", "name"):
            # The objects as read: only the table says which resources are exposed (the ConfigMap is not read).
            printer.objects(nads, fmt, as_list=True)
            return
        from macvtapctl.kube.dpconfigmap import current_config

        exposed = current_config(kube)
    rows = []
    for n in nads:
        res = nadr.resource_of(n)
        if exposed is None:
            state = "unknown"
        elif exposed.expose_all:
            state = "if-nic-exists"
        else:
            state = "yes" if res in exposed.names() else "no"
        cfg = nadr.config_of(n) or {}
        row = [n["metadata"]["namespace"], n["metadata"]["name"], res or "-", state]
        if fmt == "wide":
            row += [cfg.get("mtu", "-"), cfg.get("cniVersion", "-")]
        rows.append(row)
    if not rows:
        printer.info("No macvtap NetworkAttachmentDefinitions found" + ("" if all_namespaces
                                                                         else f" in namespace {namespace!r}"))
        return
    headers = ["namespace", "name", "resource", "exposed"] + (["mtu", "cni version"] if fmt == "wide" else [])
    printer.table(headers, rows)


@app.command("delete", help="Delete a macvtap NAD macvtapctl manages (refused while VMs reference it, or when "
                             "it is someone else's, unless --force).")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The NetworkAttachmentDefinition to delete.")],
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    cli = application(ctx)
    dry = parse_dry_run(dry_run)
    namespace = cli.namespace
    printer = cli.printer

    from macvtapctl.ops import nad as ops

    with cli.connect() as kube:
        ops.delete(kube, printer, dry, name, namespace, force=force)

