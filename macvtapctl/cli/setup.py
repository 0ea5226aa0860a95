"""`macvtapctl setup`: enable + expose + nad create, in one safe, idempotent step."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from macvtapctl import validate
from macvtapctl.cli.common import (
    BindingNameOption,
    CniVersionOption,
    DpNamespaceOption,
    DryRunOption,
    ForceOption,
    KubevirtVersionOption,
    Timeout,
    Wait,
    application,
    emit,
    wait_limit,
)
from macvtapctl.cli.settings import parse_dry_run
from macvtapctl.kube.options import DryRun
from macvtapctl.manifests import nad as nadm
from macvtapctl.rules import kubevirt

HELP = """Everything a cluster needs for VMs on LOWER_DEVICE: register the binding in KubeVirt (enable), expose
the device (expose) and create the NetworkAttachmentDefinition (nad create). Each step prints its status line.
--dry-run=client -o yaml prints every resulting object as one multi-document YAML stream (for GitOps);
--dry-run=server validates everything on the server and writes nothing."""


def setup(
    ctx: typer.Context,
    lower_device: Annotated[str, typer.Argument(metavar="LOWER_DEVICE", help="Host NIC (or bond/VLAN) to use.")],
    name: Annotated[str | None, typer.Option("--name", help="Resource name (default: LOWER_DEVICE).")] = None,
    nad_name: Annotated[str | None, typer.Option("--nad", help="NAD name (default: the resource name).")] = None,
    mode: Annotated[str, typer.Option("--mode", help="macvtap mode: bridge, private, vepa or passthru (one device per "
                                                    "node: the whole NIC).")] = "bridge",
    capacity: Annotated[int | None, typer.Option("--capacity", help="Devices per node (1-10000; default 100, "
                                                                    "passthru: 1).")] = None,
    mtu: Annotated[int | None, typer.Option("--mtu", help="MTU of the pod interface.")] = None,
    promisc: Annotated[bool, typer.Option("--promisc", help="Promiscuous mode on the macvtap.")] = False,
    cni_version: CniVersionOption = nadm.DEFAULT_CNI_VERSION,
    binding_name: BindingNameOption = kubevirt.DEFAULT_BINDING,
    external_injector: Annotated[bool, typer.Option("--external-injector",
                                                    help="v1.9+: network-resources-injector is deployed.")] = False,
    kubevirt_version: KubevirtVersionOption = None,
    dp_namespace: DpNamespaceOption = None,
    wait: Wait = False,
    timeout: Timeout = "5m",
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(("table", "json", "yaml", "name"))
    dry = parse_dry_run(dry_run)
    limit = wait_limit(timeout)
    # All input is checked before the first request.
    validate.check_binding_name(binding_name)
    if kubevirt_version is not None:
        kubevirt.require_version(None, kubevirt_version)
    from macvtapctl.ops import binding, expose
    from macvtapctl.ops import nad as nads

    entry = expose.entry_for(lower_device, name, mode, capacity)
    if dp_namespace:
        validate.check_dns_label(dp_namespace, "--dp-namespace")
    nadm.check_inputs(nad_name or entry.name, entry.name, mtu=mtu, cni_version=cni_version)
    namespace = cli.namespace
    nad = nadm.render(nad_name or entry.name, namespace, entry.name, mtu=mtu, promisc=promisc,
                      cni_version=cni_version)
    printer = cli.printer
    objs: list[dict[str, Any]] = []
    with cli.connect() as kube:
        objs.append(binding.enable(kube, printer, dry, binding_name=binding_name, external_injector=external_injector,
                                   kubevirt_version=kubevirt_version, force=force))
        exposed = expose.expose(kube, printer, dry, entry, dp_namespace=dp_namespace)
        objs.extend(exposed.objects)
        from macvtapctl.rules import dpconfig

        # After expose the resource is exposed (even in a dry run), so nad create has nothing to warn about.
        objs.append(nads.create(kube, printer, dry, nad, exposed=dpconfig.Config(items=[entry.to_json()]),
                                force=force))
        if wait and dry is DryRun.NONE:
            from macvtapctl.cli.progress import nodes_bar

            expose.wait_served(kube, printer, exposed.target, present=[validate.full_resource_name(entry.name)],
                               gone=[], restarted=False, limit=limit, progress=nodes_bar(printer))
    emit(printer, fmt, objs)
