"""The root command: kubectl's global options, error handling and the command tree.

Command modules import only typer and the standard library at module level; heavy imports
(kubernetes, pyroute2, grpc) happen inside the functions that need them.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer
from typer.core import TyperGroup

from macvtapctl.cli import argv
from macvtapctl.cli.common import describe
from macvtapctl.cli.settings import Settings, check_output_format, debug_from_env, parse_request_timeout
from macvtapctl.errors import ExitCode, MacvtapctlError
from macvtapctl.output import Printer

PLUGIN_NAME = "kubectl-macvtap"


def program_name(argv0: str | None = None) -> str:
    """`kubectl macvtap` when run as a kubectl plugin, else `macvtapctl`."""
    base = Path(argv0 if argv0 is not None else sys.argv[0]).name
    return "kubectl macvtap" if base.startswith(PLUGIN_NAME) else "macvtapctl"


def _report(exc: BaseException, debug: bool) -> int:
    printer = Printer()
    if debug:
        import traceback  # only on errors: every other run would pay for it at start-up

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, MacvtapctlError):
        printer.error(describe(exc))
        return int(exc.exit_code)
    printer.error(f"unexpected {type(exc).__name__}: {exc}" + ("" if debug else " (run with -v for details)"))
    return int(ExitCode.ERROR)


class RootGroup(TyperGroup):
    """Hoists global options, prints errors as one line and maps them to ExitCode; loads commands lazily."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS:
            return load_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # The summaries are static: listing them must not import every command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, c.summary) for name, c in COMMANDS.items()])

    def invoke(self, ctx: Any) -> Any:
        from macvtapctl.cli._click_compat import click_exceptions

        try:
            return super().invoke(ctx)
        except click_exceptions() as exc:
            raise exc from None
        except KeyboardInterrupt:
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            raise typer.Exit(int(ExitCode.ERROR)) from None
        except Exception as exc:
            settings = getattr(ctx.obj, "settings", None)
            debug = settings.debug if isinstance(settings, Settings) else debug_from_env()
            raise typer.Exit(_report(exc, debug)) from None

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        raw = list(sys.argv[1:] if args is None else args)
        prog = prog_name if prog_name and prog_name != "macvtapctl" else program_name()
        try:
            hoisted = argv.hoist_global_options(raw, declared_options(argv.command_path(raw)))
        except MacvtapctlError as exc:
            Printer().error(f"{describe(exc)} (see '{prog} --help')")
            hoisted = None
        code = int(ExitCode.USAGE) if hoisted is None else self._run(hoisted, prog, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, args: list[str], prog: str, complete_var: str | None, **extra: Any) -> int:
        from macvtapctl.cli._click_compat import NoArgsIsHelpError, UsageError, click_exceptions

        try:
            rv = super().main(args=args, prog_name=prog,
                              complete_var=complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            print(exc.ctx.get_help() if exc.ctx else "")
            code = int(ExitCode.SUCCESS)
        except UsageError as exc:
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else prog
            option = getattr(exc, "option_name", None)
            message = f"unknown flag: {option}" if type(exc).__name__ == "NoSuchOption" and option \
                else exc.format_message().rstrip(".")
            Printer().error(f"{message} (see '{where} --help')")
            code = int(ExitCode.USAGE)
        except click_exceptions() as exc:
            Printer().error(exc.format_message() if hasattr(exc, "format_message") else str(exc))
            code = int(getattr(exc, "exit_code", ExitCode.ERROR))
        else:
            code = rv if isinstance(rv, int) else 0
        return code


app = typer.Typer(
    cls=RootGroup,
    name="macvtapctl",
    help="Put KubeVirt virtual machines straight onto a node's L2 network with macvtap.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain, kubectl-like help; Rich is imported only where tables need it
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _check_output(value: str | None) -> str | None:
    if value is not None:
        check_output_format(value)
    return value


@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", envvar="MACVTAPCTL_KUBECONFIG", metavar="PATH",
        help="Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")] = None,
    context: Annotated[str | None, typer.Option(
        "--context", envvar="MACVTAPCTL_CONTEXT", help="The kubeconfig context to use.")] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", envvar="MACVTAPCTL_NAMESPACE",
        help="Namespace for this request (default: the context's, else 'default').")] = None,
    request_timeout: Annotated[str, typer.Option(
        "--request-timeout", envvar="MACVTAPCTL_REQUEST_TIMEOUT", metavar="DURATION",
        help="Time to wait for one API request before giving up, e.g. 10s or 1m; 0 means no limit.")] = "0",
    impersonate: Annotated[str | None, typer.Option(
        "--as", metavar="USER", help="Username to impersonate for the operation (kubectl's --as).")] = None,
    impersonate_uid: Annotated[str | None, typer.Option(
        "--as-uid", metavar="UID", help="UID to impersonate for the operation (needs --as).")] = None,
    impersonate_groups: Annotated[list[str] | None, typer.Option(
        "--as-group", metavar="GROUP",
        help="Group to impersonate for the operation; repeat for several (needs --as).")] = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", envvar="MACVTAPCTL_OUTPUT", metavar="FORMAT",
        help="Output format: table, wide, json, yaml or name (commands accept a subset).")] = None,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, envvar="MACVTAPCTL_VERBOSE",
        help="More detail on stderr; shows tracebacks on errors.")] = 0,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", envvar="MACVTAPCTL_QUIET", help="Only errors and warnings on stderr.")] = False,
) -> None:
    from macvtapctl.cli.common import Application

    ctx.obj = Application(Settings(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        request_timeout=parse_request_timeout(request_timeout),
        impersonate=impersonate or None,
        impersonate_uid=impersonate_uid or None,
        impersonate_groups=tuple(impersonate_groups or ()),
        output=_check_output(output),
        verbosity=-1 if quiet and not verbose else verbose,
        program=ctx.find_root().info_name or "macvtapctl",
    ))


class Command(NamedTuple):
    """One entry of the command tree: where the command is, its one-line summary, and the constant of its module
    that holds the rest of its help (None: the summary is all)."""

    target: str  # "module:attribute": a function, or a Typer app for a group
    summary: str
    detail: str | None = None


# The command tree, loaded lazily (hatch's LazyGroup shape): a command's module is imported only when that command
# runs (or shows its own help), so start-up pays for one module, not fifteen. The summary is written here only:
# `macvtapctl --help` lists it without importing anything, and the command's own help starts with it, followed by
# the `detail` its entry names.
COMMANDS: dict[str, Command] = {
    "version": Command("version:version", "Print the client, server and KubeVirt versions."),
    "enable": Command("enable:enable", "Register the macvtap network binding in the KubeVirt CR.", "ENABLE_HELP"),
    "disable": Command("enable:disable", "Unregister the macvtap network binding.", "DISABLE_HELP"),
    "expose": Command("expose:expose", "Expose a host NIC to VMs (DP_MACVTAP_CONF entry).", "EXPOSE_HELP"),
    "unexpose": Command("expose:unexpose", "Remove an exposed device.", "UNEXPOSE_HELP"),
    "exposed": Command("expose:exposed", "List the exposed devices.", "EXPOSED_HELP"),
    "setup": Command("setup:setup", "enable + expose + nad create, in one step.", "HELP"),
    "rbac": Command("rbac:rbac", "Print a least-privilege ClusterRole for the admin commands.", "HELP"),
    "nad": Command("nad:app", "Manage macvtap NetworkAttachmentDefinitions."),
    "vm": Command("vm:app", "Create, check and convert VirtualMachines that use macvtap."),
    "install": Command("install:install", "Deploy the node agent (or enable macvtap in CNAO).", "INSTALL_HELP"),
    "uninstall": Command("install:uninstall", "Remove what install created.", "UNINSTALL_HELP"),
    "status": Command("status:status", "The whole macvtap chain at a glance; exit 0 when complete.", "HELP"),
    "doctor": Command("doctor:doctor", "Why a VM on macvtap has no network: causes and fixes.", "HELP"),
    "kind-config": Command("install:kind_config", "Print a KinD config whose nodes see /dev/tapN.", "KIND_CONFIG_HELP"),
    "agent": Command("agent:app", "Run the node agent (device plugin + CNI datapath); agent check.", "HELP"),
}


@functools.cache
def load_command(name: str) -> Any:
    """The Click command for `name`, built from its module on first use (once per process)."""
    import importlib

    entry = COMMANDS[name]
    module_name, attr = entry.target.split(":")
    module = importlib.import_module(f"macvtapctl.cli.{module_name}")
    target = getattr(module, attr)
    detail = getattr(module, entry.detail) if entry.detail else None
    text = f"{entry.summary}\n\n{detail}" if detail and detail != entry.summary else entry.summary
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
        command.help = text
    else:
        single = typer.Typer(rich_markup_mode=None)
        single.command(name, help=text)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


def declared_options(path: list[str]) -> set[str]:
    """Global-option spellings that a command on `path` declares itself (those are never hoisted: they are its
    own). Loads only the module of that one command."""
    if not path or path[0] not in COMMANDS:
        return set()
    command = load_command(path[0])
    commands = [command]
    if len(path) > 1 and hasattr(command, "commands"):
        sub = command.commands.get(path[1])
        if sub is not None:
            commands.append(sub)
    spellings = {opt for cmd in commands for param in cmd.params for opt in getattr(param, "opts", [])}
    return spellings & set(argv.GLOBAL_OPTIONS)


def main() -> None:
    # The collector, for a process that lives a fraction of a second: what start-up loaded (the modules, the
    # command tree) lives until exit, so no collection need traverse it again; and at exit nothing is left to
    # collect (the memory goes back with the process) — without the second freeze, interpreter shutdown spends
    # ~20 ms walking every object of typer, click and PyYAML. Long-running commands (agent, --wait) collect as
    # usual: only what exists now is frozen.
    gc.freeze()
    try:
        app(prog_name=program_name())
    finally:
        gc.freeze()
