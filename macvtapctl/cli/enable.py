"""`macvtapctl enable` / `disable`: register the macvtap network binding in the KubeVirt CR, safely."""

from __future__ import annotations

from typing import Annotated

import typer

from macvtapctl.cli.common import (
    WRITE_FORMATS,
    BindingNameOption,
    DryRunOption,
    ForceOption,
    KubevirtVersionOption,
    application,
    emit,
)
from macvtapctl.cli.settings import parse_dry_run
from macvtapctl.rules import kubevirt

ENABLE_HELP = """Finds the KubeVirt CR in any namespace and plans by its status.observedKubeVirtVersion: adds the
NetworkBindingPlugins gate on v1.1-v1.4, nothing on v1.5+ (GA), and on v1.9+ disables
ExternalNetResourceInjection so KubeVirt keeps requesting the macvtap device for VM pods (unless
--external-injector). Every other binding, gate and setting is kept. Goes through HyperConverged when HCO
manages KubeVirt."""

DISABLE_HELP = "Refused while VMs use it, unless --force. Feature gates stay (other bindings may need them)."

def enable(
    ctx: typer.Context,
    binding_name: BindingNameOption = kubevirt.DEFAULT_BINDING,
    external_injector: Annotated[bool, typer.Option(
        "--external-injector",
        help="v1.9+: network-resources-injector is deployed; leave ExternalNetResourceInjection on.")] = False,
    kubevirt_version: KubevirtVersionOption = None,
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(WRITE_FORMATS)
    dry = parse_dry_run(dry_run)
    from macvtapctl.validate import check_binding_name

    check_binding_name(binding_name)
    if kubevirt_version is not None:
        kubevirt.require_version(None, kubevirt_version)  # bad input fails before any request
    printer = cli.printer
    from macvtapctl.ops import binding

    with cli.connect() as kube:
        result = binding.enable(kube, printer, dry, binding_name=binding_name, external_injector=external_injector,
                                kubevirt_version=kubevirt_version, force=force)
    emit(printer, fmt, [result])


def disable(
    ctx: typer.Context,
    binding_name: BindingNameOption = kubevirt.DEFAULT_BINDING,
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    cli = application(ctx)
    fmt = cli.output_format(WRITE_FORMATS)
    dry = parse_dry_run(dry_run)
    from macvtapctl.validate import check_binding_name

    check_binding_name(binding_name)
    printer = cli.printer
    from macvtapctl.ops import binding

    with cli.connect() as kube:
        result = binding.disable(kube, printer, dry, binding_name=binding_name, force=force)
    emit(printer, fmt, [result])
