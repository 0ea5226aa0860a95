"""The root command: kubectl's global options, error handling and the command tree.

Command modules import only typer and the standard library at module level; heavy imports
(kubernetes, pyroute2, grpc) happen inside the functions that need them.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from macvtapctl.cli import argv
from macvtapctl.errors import ExitCode, MacvtapctlError
from macvtapctl.output import Printer
from macvtapctl.settings import Settings, check_output_format, debug_from_env, parse_request_timeout

PLUGIN_NAME = "kubectl-macvtap"


def program_name(argv0: str | None = None) -> str:
    """`kubectl macvtap` when run as a kubectl plugin, else `macvtapctl`."""
    base = Path(argv0 if argv0 is not None else sys.argv[0]).name
    return "kubectl macvtap" if base.startswith(PLUGIN_NAME) else "macvtapctl"


def _report(exc: BaseException, debug: bool) -> int:
    printer = Printer()
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, MacvtapctlError):
        printer.error(exc.message)
        return int(exc.exit_code)
    printer.error(f"unexpected {type(exc).__name__}: {exc}" + ("" if debug else " (run with -v for details)"))
    return int(ExitCode.ERROR)


class RootGroup(TyperGroup):
    """Hoists global options, prints errors as one line and maps them to ExitCode."""

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
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            debug = settings.debug if settings else debug_from_env()
            raise typer.Exit(_report(exc, debug)) from None

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        raw = list(sys.argv[1:] if args is None else args)
        prog = prog_name if prog_name and prog_name != "macvtapctl" else program_name()
        try:
            hoisted = argv.hoist_global_options(raw)
        except MacvtapctlError as exc:
            Printer().error(f"{exc.message} (see '{prog} --help')")
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
    output: Annotated[str | None, typer.Option(
        "--output", "-o", envvar="MACVTAPCTL_OUTPUT", metavar="FORMAT",
        help="Output format: table, wide, json, yaml or name (commands accept a subset).")] = None,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, envvar="MACVTAPCTL_VERBOSE",
        help="More detail on stderr; shows tracebacks on errors.")] = 0,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", envvar="MACVTAPCTL_QUIET", help="Only errors and warnings on stderr.")] = False,
) -> None:
    ctx.obj = Settings(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        request_timeout=parse_request_timeout(request_timeout),
        output=_check_output(output),
        verbosity=-1 if quiet and not verbose else verbose,
        program=ctx.find_root().info_name or "macvtapctl",
    )


def _register() -> None:
    from macvtapctl.cli import agent, enable, expose, install, nad, rbac, setup, status, version, vm

    app.command("version", help=version.HELP)(version.version)
    app.command("enable", help=enable.ENABLE_HELP)(enable.enable)
    app.command("disable", help=enable.DISABLE_HELP)(enable.disable)
    app.command("expose", help=expose.EXPOSE_HELP)(expose.expose)
    app.command("unexpose", help=expose.UNEXPOSE_HELP)(expose.unexpose)
    app.command("exposed", help=expose.EXPOSED_HELP)(expose.exposed)
    app.add_typer(nad.app, name="nad")
    app.command("setup", help=setup.HELP)(setup.setup)
    app.command("rbac", help=rbac.HELP)(rbac.rbac)
    app.add_typer(vm.app, name="vm")
    app.add_typer(agent.app, name="agent")
    app.command("install", help=install.INSTALL_HELP)(install.install)
    app.command("uninstall", help=install.UNINSTALL_HELP)(install.uninstall)
    app.command("kind-config", help=install.KIND_HELP)(install.kind_config)
    app.command("status", help=status.HELP)(status.status)


_register()


def main() -> None:
    app(prog_name=program_name())
