"""The CLI reference (docs/reference.md) and the man page (docs/macvtapctl.1), generated from the Click command tree
the app builds — through the lazy registry, so every command module is loaded — never written by hand.

    python tools/clidocs.py            write both
    python tools/clidocs.py --check    exit 1 when either differs from what the app says (tests run this)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REFERENCE = REPO / "docs" / "reference.md"
MAN = REPO / "docs" / "macvtapctl.1"


def tree() -> Iterator[tuple[list[str], click.Command]]:
    """(path, command) for the root and every command below it, in the registry's order."""
    import typer.main

    from macvtapctl.cli import app

    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="macvtapctl")

    def walk(path: list[str], cmd: click.Command) -> Iterator[tuple[list[str], click.Command]]:
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not getattr(sub, "hidden", False):
                    yield from walk([*path, name], sub)

    yield from walk([], root)


def params(cmd: click.Command) -> tuple[list[click.Argument], list[click.Option]]:
    args = [p for p in cmd.params if isinstance(p, click.Argument)]
    opts = [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden
            and p.name not in ("install_completion", "show_completion")]
    return args, opts


def default_of(opt: click.Option) -> str:
    value: Any = opt.default
    if opt.is_flag and not opt.secondary_opts:
        return ""
    if value is None or value in ((), []):
        return ""
    if callable(value):
        return ""
    if isinstance(value, bool):
        return ("--" + opt.name.replace("_", "-")) if value else (opt.secondary_opts or [""])[0]
    return str(value)


def spelling(opt: click.Option) -> str:
    names = ", ".join(f"`{o}`" for o in [*opt.opts, *opt.secondary_opts])
    if not opt.is_flag:
        names += f" `{opt.metavar or opt.type.name.upper()}`"
    return names


def markdown() -> str:
    out = ["# CLI reference", "",
           "Generated from the app by `tools/clidocs.py` (`make docs`); a test fails when it differs from the",
           "code. Global options (the root's) are accepted before or after any command, as kubectl's are.", ""]
    for path, cmd in tree():
        name = " ".join(["macvtapctl", *path])
        out += [f"## {name}", ""]
        help_text = (cmd.help or "").strip()
        if help_text:
            out += [help_text.replace("\n\n", "\n\n").strip(), ""]
        args, opts = params(cmd)
        usage = name + (" [OPTIONS]" if opts else "") + "".join(f" {a.human_readable_name}" for a in args)
        if isinstance(cmd, click.Group):
            usage += " COMMAND"
        out += ["```", usage, "```", ""]
        if args:
            out += ["| argument | required |", "|---|---|"]
            out += [f"| `{a.human_readable_name}` | {'yes' if a.required else 'no'} |" for a in args]
            out += [""]
        if opts:
            out += ["| option | default | env | description |", "|---|---|---|---|"]
            for o in opts:
                env = ", ".join(f"`{e}`" for e in ([o.envvar] if isinstance(o.envvar, str) else o.envvar or []))
                default = default_of(o)
                out.append(f"| {spelling(o)} | {f'`{default}`' if default else ''} | {env} | "
                           f"{(o.help or '').replace('|', '/')} |")
            out += [""]
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd, info_name=name)
            subs = [(n, cmd.get_command(ctx, n)) for n in cmd.list_commands(ctx)]
            out += ["| command | summary |", "|---|---|"]
            out += [f"| [`{n}`](#{(name + ' ' + n).replace(' ', '-')}) | {(c.get_short_help_str(100) if c else '')} |"
                    for n, c in subs if c is not None and not c.hidden]
            out += [""]
    return "\n".join(out).rstrip("\n") + "\n"


def _roff(text: str) -> str:
    lines = []
    for raw in text.replace("\\", "\\\\").splitlines():
        line = raw.replace("-", "\\-")
        lines.append(("\\&" + line) if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def man() -> str:
    from macvtapctl import __version__

    out = [f'.TH MACVTAPCTL 1 "" "macvtapctl {__version__}" "User Commands"', ".SH NAME",
           "macvtapctl \\- put KubeVirt virtual machines straight onto a node's L2 network with macvtap",
           ".SH SYNOPSIS", ".B macvtapctl", "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
           ".SH DESCRIPTION", "Also runs as \\fBkubectl macvtap\\fR. Each command below lists its options; global "
           "options are accepted before or after the command."]
    for path, cmd in tree():
        _args, opts = params(cmd)
        out += [".SH " + (" ".join(path).upper() if path else "GLOBAL OPTIONS")]
        if path and cmd.help:
            out += [_roff(cmd.help.strip())]
        for o in opts:
            names = ", ".join([*o.opts, *o.secondary_opts])
            arg = "" if o.is_flag else f" {o.metavar or o.type.name.upper()}"
            default = default_of(o)
            out += [".TP", f"\\fB{_roff(names)}\\fR{_roff(arg)}",
                    _roff((o.help or "") + (f" (default: {default})" if default else ""))]
    out += [".SH EXIT STATUS", "0 success, 1 error, 2 usage, 3 precondition, 4 forbidden, 5 conflict, 6 timeout, "
            "7 unreachable, 8 findings, 130 interrupted (docs/exit-codes.md).", ".SH SEE ALSO",
            "\\fBkubectl\\fR(1), \\fBvirtctl\\fR(1)"]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    want = {REFERENCE: markdown(), MAN: man()}
    if a.check:
        stale = [str(p.relative_to(REPO)) for p, text in want.items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"stale: {', '.join(stale)} (run: make docs)", file=sys.stderr)
            return 1
        return 0
    for p, text in want.items():
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
