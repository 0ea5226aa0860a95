"""`expose`, `unexpose`, `exposed`: edit the device-plugin ConfigMap (DP_MACVTAP_CONF) without losing entries."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from macvtapctl import dpconfig, validate
from macvtapctl.cli.common import (
    WRITE_FORMATS,
    DryRunOption,
    ForceOption,
    connect,
    dry_run_of,
    emit,
    printer_for,
    settings_of,
)
from macvtapctl.errors import PreconditionError, UsageError
from macvtapctl.output import Printer
from macvtapctl.settings import DryRun

EXPOSE_HELP = """Expose a host NIC to VMs as macvtap.network.kubevirt.io/NAME (default NAME: the device name).

Upserts one entry of DP_MACVTAP_CONF in ConfigMap macvtap-deviceplugin-config. --all writes [] (every
physical link or bond, each under its own name). The ConfigMap's namespace: --dp-namespace, else the one
namespace that has it, else "macvtap" (the agent's default install namespace)."""
UNEXPOSE_HELP = "Remove the entry NAME from DP_MACVTAP_CONF."
EXPOSED_HELP = "List the exposed devices (the entries of DP_MACVTAP_CONF)."

DpNamespace = Annotated[str | None, typer.Option(
    "--dp-namespace", metavar="NS", help="Namespace of the device-plugin ConfigMap (default: found, else macvtap).")]
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
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    settings = settings_of(ctx)
    fmt = settings.output_format(WRITE_FORMATS)
    mode_ = dry_run_of(dry_run)
    entry = None
    if expose_all:
        if lower_device or name:
            raise UsageError("--all exposes every physical link; it takes no LOWER_DEVICE or --name")
    else:
        if not lower_device:
            raise UsageError("LOWER_DEVICE is required (or --all)")
        entry = make_entry(lower_device, name, mode, capacity)
    if dp_namespace:
        validate.check_dns_label(dp_namespace, "--dp-namespace")
    printer = printer_for(settings)
    with connect(settings) as kube:
        objs = run_expose(kube, printer, mode_, entry, dp_namespace=dp_namespace, force=force, restart=restart)
    emit(printer, fmt, objs)


def make_entry(lower_device: str, name: str | None, mode: str, capacity: int | None) -> dpconfig.Entry:
    validate.check_interface_name(lower_device, "lower device")
    if mode == dpconfig.PASSTHRU:
        if capacity not in (None, 1):
            raise UsageError(f"invalid capacity {capacity}: a passthru macvtap takes the whole of {lower_device}, "
                             "so there is one device per node (--capacity 1)")
        capacity = 1
    capacity = dpconfig.DEFAULT_CAPACITY if capacity is None else capacity
    return dpconfig.Entry(name=name or lower_device, lower_device=lower_device, mode=mode,
                          capacity=capacity).validated()


def run_expose(kube: Any, printer: Printer, mode: DryRun, entry: dpconfig.Entry | None, *,
               dp_namespace: str | None = None, force: bool = False, restart: bool = False) -> list[dict[str, Any]]:
    """Upsert `entry` (None: write []) with re-read/re-plan on conflict. Returns the objects written."""
    from macvtapctl.kube import dpconfigmap
    from macvtapctl.kube.retry import retry_on_conflict

    objs: list[dict[str, Any]] = []
    warned = False

    def attempt() -> None:
        nonlocal warned
        objs.clear()
        target = dpconfigmap.locate(kube, dp_namespace)
        cfg = target.config()
        if not warned:
            for w in cfg.warnings:
                printer.warn(w)
            warned = True
        if entry is None:
            if cfg.items and not force:
                raise PreconditionError(
                    f"--all would drop the explicit entries {', '.join(cfg.names())} from {target.label}; "
                    "pass --force to replace them with []")
            new, changed = dpconfig.Config(), bool(cfg.items) or target.object is None
        else:
            new, op = dpconfig.upsert(cfg, entry)
            changed = op != "unchanged" or target.object is None
        if not changed:
            printer.status(target.label, "unchanged", mode.suffix)
            if target.object is not None:
                objs.append(target.object)
            return
        ns_obj = dpconfigmap.ensure_namespace(kube, target.namespace, mode) if target.object is None else None
        if ns_obj is not None:
            printer.status(f"namespace/{target.namespace}", "created", mode.suffix)
            objs.append(ns_obj)
        write_mode = mode
        if ns_obj is not None and mode is DryRun.SERVER:
            # Nothing can be validated inside a namespace that a dry run did not create.
            printer.warn(f"namespace {target.namespace} does not exist yet: {target.label} was not validated by "
                         "the server")
            write_mode = DryRun.CLIENT
        obj, operation = dpconfigmap.write(kube, target, new, write_mode)
        printer.status(target.label, operation, mode.suffix)
        objs.append(obj)
        _upstream_restart(kube, printer, target, mode, restart)

    retry_on_conflict(attempt, what="the device-plugin ConfigMap")
    return objs


def _upstream_restart(kube: Any, printer: Printer, target: Any, mode: DryRun, restart: bool) -> None:
    from macvtapctl.kube import dpconfigmap

    for ds in dpconfigmap.upstream_daemonsets(kube, target.namespace, target.name):
        ref = f"{ds['metadata']['namespace']}/{ds['metadata']['name']}"
        if restart:
            dpconfigmap.restart_daemonset(kube, ds, mode)
            printer.status(f"daemonset.apps/{ds['metadata']['name']}", "restarted", mode.suffix)
        else:
            printer.warn(f"DaemonSet {ref} (upstream macvtap-cni) reads {target.name} only at start: restart it "
                         f"(kubectl -n {ds['metadata']['namespace']} rollout restart daemonset "
                         f"{ds['metadata']['name']}) or rerun with --restart")


def unexpose(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The entry (resource) name to remove.")],
    dp_namespace: DpNamespace = None,
    restart: Restart = False,
    dry_run: DryRunOption = "none",
) -> None:
    settings = settings_of(ctx)
    fmt = settings.output_format(WRITE_FORMATS)
    mode = dry_run_of(dry_run)
    printer = printer_for(settings)
    from macvtapctl.kube import dpconfigmap
    from macvtapctl.kube.retry import retry_on_conflict

    objs: list[dict[str, Any]] = []
    with connect(settings) as kube:
        def attempt() -> None:
            objs.clear()
            target = dpconfigmap.locate(kube, dp_namespace)
            cfg = target.config()
            new, removed = dpconfig.remove(cfg, name)
            if not removed:
                known = ", ".join(cfg.names()) or "none"
                raise PreconditionError(f"{name!r} is not exposed in {target.namespace}/{target.name} "
                                        f"(entries: {known})")
            obj, _ = dpconfigmap.write(kube, target, new, mode)
            printer.status(target.label, "configured", mode.suffix)
            objs.append(obj)
            _upstream_restart(kube, printer, target, mode, restart)

        retry_on_conflict(attempt, what="the device-plugin ConfigMap")
    emit(printer, fmt, objs)


def exposed(ctx: typer.Context, dp_namespace: DpNamespace = None) -> None:
    settings = settings_of(ctx)
    fmt = settings.output_format(("table", "wide", "json", "yaml"))
    printer = printer_for(settings)
    from macvtapctl.kube import dpconfigmap

    with connect(settings) as kube:
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
