"""What every command gets (`Application`, hatch's shape: one object in ctx.obj), options many commands take,
and the write pattern."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any

import typer

from macvtapctl.cli.settings import Settings
from macvtapctl.errors import Hint, MacvtapctlError
from macvtapctl.output import Printer

if TYPE_CHECKING:
    from macvtapctl.kube.client import Kube

DryRunOption = Annotated[str, typer.Option(
    "--dry-run", metavar="none|client|server",
    help="client: print what would change, send nothing; server: validate on the server, persist nothing.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Go ahead despite the safety check described above.")]

WRITE_FORMATS = ("table", "json", "yaml", "name")

# What the user can change, in this command layer's words (the layers below name a Hint, never a flag).
HINTS = {
    Hint.NO_KUBECONFIG: ": pass --kubeconfig or set KUBECONFIG",
    Hint.KUBECONFIG: " (--kubeconfig)",
    Hint.CONTEXT: " (--context)",
    Hint.UNREACHABLE: " (is the cluster running? check --kubeconfig and --context)",
    Hint.REQUEST_TIMEOUT: " (--request-timeout)",
    Hint.DP_NAMESPACE: "; choose one with --dp-namespace (the one the device plugin DaemonSet runs in)",
    Hint.FORCE_CONFLICTS: "; pass --force-conflicts to take them over",
}


def describe(exc: MacvtapctlError) -> str:
    """The error's one line, with the flag that fixes it when there is one."""
    return exc.message + HINTS.get(exc.hint or "", "")



class Application:
    """The global flags and what they give every command: the printer, the namespace, an API connection.

    The root command puts one in ctx.obj; commands take it with `application(ctx)` instead of repeating the
    settings -> format -> printer -> namespace -> connect preamble."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def printer(self) -> Printer:
        return Printer(verbosity=self.settings.verbosity)

    @cached_property
    def namespace(self) -> str:
        """-n, else the kubeconfig context's namespace, else "default" (kubectl's rule)."""
        return namespace_of(self.settings)

    def output_format(self, allowed: tuple[str, ...]) -> str:
        return self.settings.output_format(allowed)

    def connect(self) -> Kube:
        return connect(self.settings)


def application(ctx: typer.Context) -> Application:
    obj = ctx.find_root().obj
    assert isinstance(obj, Application)
    return obj


def connect(settings: Settings) -> Kube:
    from macvtapctl.kube.client import Kube

    return Kube.connect(settings)


def namespace_of(settings: Settings) -> str:
    if settings.namespace:
        return settings.namespace
    from macvtapctl.kube.kubeconfig import default_namespace

    return default_namespace(settings.kubeconfig, settings.context)


def emit(printer: Printer, fmt: str, objects: list[dict[str, Any]]) -> None:
    """The one way a command prints the objects it wrote (or would write), on stdout: -o yaml a multi-document
    stream (GitOps keeps it as files), -o json the object or a List of several (kubectl's), -o name a line each.
    Tables print nothing for writes (the status lines said it), nor does a write that wrote nothing."""
    if not objects or fmt not in ("json", "yaml", "name"):
        return
    from macvtapctl.manifests.injector import redacted

    objects = redacted(objects)  # never a private key on the screen or in a file
    if fmt == "yaml":
        printer.yaml_stream(objects)
    else:
        printer.objects(objects, fmt)


Wait = Annotated[bool, typer.Option(
    "--wait", help="Return when every node the device plugin runs on serves the change (exit 6 on --timeout).")]
Timeout = Annotated[str, typer.Option("--timeout", metavar="DURATION", help="For --wait.")]


def wait_limit(value: str) -> float:
    """--timeout in seconds (default 5 minutes), parsed before anything is sent: a bad duration is a usage error."""
    from macvtapctl.cli.settings import parse_request_timeout

    return parse_request_timeout(value, "--timeout") or 300.0


# Options several commands share: one declaration, one help text.
BindingNameOption = Annotated[str, typer.Option("--binding-name", help="Name of the binding in the KubeVirt CR.")]
KubevirtVersionOption = Annotated[str | None, typer.Option(
    "--kubevirt-version", metavar="vX.Y.Z", help="Plan for this KubeVirt version instead of the CR's observed one.")]
DpNamespaceOption = Annotated[str | None, typer.Option(
    "--dp-namespace", metavar="NS", help="Namespace of the device-plugin ConfigMap (default: found, else macvtap).")]
CniVersionOption = Annotated[str, typer.Option("--cni-version", help="cniVersion of the NAD's CNI config.")]
