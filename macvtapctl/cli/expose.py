"""`expose`, `unexpose`, `exposed`: edit the device-plugin ConfigMap (DP_MACVTAP_CONF) without losing entries."""

from __future__ import annotations

from typing import Annotated

import typer

from macvtapctl import validate
from macvtapctl.cli.common import (
    WRITE_FORMATS,
    DpNamespaceOption,
    DryRunOption,
    ForceOption,
    Timeout,
    Wait,
    application,
    emit,
    wait_limit,
)
from macvtapctl.cli.settings import parse_dry_run
from macvtapctl.errors import PreconditionError, UsageError
from macvtapctl.kube.options import DryRun
from macvtapctl.rules import dpconfig

EXPOSE_HELP = """The resource is macvtap.network.kubevirt.io/NAME (default NAME: the device name).

Upserts one entry of DP_MACVTAP_CONF in ConfigMap macvtap-deviceplugin-config. --all writes [] (every
physical link or bond, each under its own name). The ConfigMap's namespace: --dp-namespace, else the one
namespace that has it, else "macvtap" (the agent's default install namespace)."""
UNEXPOSE_HELP = "Removes the entry NAME from DP_MACVTAP_CONF; the other entries are kept as they are."
EXPOSED_HELP = "The entries of DP_MACVTAP_CONF, defaults filled in (-o wide: the full resource name)."

DpNamespace = DpNamespaceOption
Restart = Annotated[bool, typer.Option(
    "--restart", help="Rollout-restart an upstream macvtap-cni DaemonSet (it reads the ConfigMap only at start).")]
def expose(
    ctx: typer.Context,
    lower_device: Annotated[str | None, typer.Argument(metavar="LOWER_DEVICE",
                                                       help="Host NIC (or bond/VLAN) to expose.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Resource name (default: LOWER_DEVICE).")] = None,
    mode: Annotated[str, typer.Option("--mode", help="macvtap mode: bridge, private, vepa or passthru (one device per "
                                                    "node: the whole NIC).")] = "bridge",
    capacity: Annotated[int | None, typer.Option("--capacity", help="Devices per node (1-10000; default 100, "
                                                                    "passthru: 1).")] = None,
    expose_all: Annotated[bool, typer.Option("--all", help="Write [] : every physical link or bond.")] = False,
    dp_namespace: DpNamespace = None,
    restart: Restart = False,
    wait: Wait = False,
    timeout: Timeout = "5m",
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(WRITE_FORMATS)
    dry = parse_dry_run(dry_run)
    limit = wait_limit(timeout)
    entry = None
    if expose_all:
        if lower_device or name:
            raise UsageError("--all exposes every physical link; it takes no LOWER_DEVICE or --name")
    else:
        if not lower_device:
            raise UsageError("LOWER_DEVICE is required (or --all)")
        from macvtapctl.ops.expose import entry_for

        entry = entry_for(lower_device, name, mode, capacity)
    if dp_namespace:
        validate.check_dns_label(dp_namespace, "--dp-namespace")
    printer = cli.printer
    from macvtapctl.cli.progress import nodes_bar
    from macvtapctl.ops import expose as ops

    with cli.connect() as kube:
        done = ops.expose(kube, printer, dry, entry, dp_namespace=dp_namespace, force=force, restart=restart)
        if wait and dry is DryRun.NONE:  # a dry run wrote nothing to wait for
            wanted = [] if entry is None else [validate.full_resource_name(entry.name)]
            ops.wait_served(kube, printer, done.target, present=wanted, gone=[], restarted=restart, limit=limit,
                            progress=nodes_bar(printer))
    emit(printer, fmt, done.objects)


def unexpose(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The entry (resource) name to remove.")],
    dp_namespace: DpNamespace = None,
    restart: Restart = False,
    wait: Wait = False,
    timeout: Timeout = "5m",
    dry_run: DryRunOption = "none",
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(WRITE_FORMATS)
    dry = parse_dry_run(dry_run)
    limit = wait_limit(timeout)
    printer = cli.printer

    from macvtapctl.cli.progress import nodes_bar
    from macvtapctl.ops import expose as ops

    with cli.connect() as kube:
        done = ops.unexpose(kube, printer, dry, name, dp_namespace=dp_namespace, restart=restart)
        if wait and dry is DryRun.NONE:
            ops.wait_served(kube, printer, done.target, present=[], gone=[validate.full_resource_name(name)],
                            restarted=restart, limit=limit, progress=nodes_bar(printer))
    emit(printer, fmt, done.objects)


def exposed(ctx: typer.Context, dp_namespace: DpNamespace = None) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "wide", "json", "yaml"))
    printer = cli.printer
    from macvtapctl.kube import dpconfigmap

    with cli.connect() as kube:
        target = dpconfigmap.locate(kube, dp_namespace)
    if target.object is None:
        raise PreconditionError(f"ConfigMap {target.name} not found in namespace {target.namespace!r}; "
                                "expose a device first (macvtapctl expose LOWER_DEVICE)")
    cfg = target.config()
    for w in cfg.warnings:
        printer.warn(w)
    rows = dpconfig.entries_for_display(cfg)
    if fmt in ("json", "yaml"):
        printer.document({"namespace": target.namespace, "configMap": target.name,
                          "exposeAll": cfg.expose_all, "entries": rows}, fmt)
        return
    if cfg.expose_all:
        printer.info(f"{target.namespace}/{target.name}: [] exposes every physical link or bond under its own name")
        return
    headers = ["name", "lower device", "mode", "capacity"] + (["resource"] if fmt == "wide" else [])
    printer.table(headers, [[r["name"], r["lowerDevice"], r["mode"], r["capacity"]]
                            + ([r["resource"]] if fmt == "wide" else []) for r in rows])
