"""kubectl-style persistent flags: global options may appear anywhere, so move them to the front.

Click only accepts group options before the subcommand; kubectl users type `macvtapctl version -o json`.
"""

from __future__ import annotations

from macvtapctl.errors import UsageError

# option -> takes a value
GLOBAL_OPTIONS: dict[str, bool] = {
    "--kubeconfig": True,
    "--context": True,
    "--namespace": True,
    "-n": True,
    "--request-timeout": True,
    "--output": True,
    "-o": True,
    "--verbose": False,
    "-v": False,
    "--quiet": False,
    "-q": False,
}

# Subcommands whose own options reuse one of these names, so nothing is hoisted for them (none today: a command
# that needs -o/-n/-v/-q reads the global setting instead of declaring its own, so the flag cannot be stolen).
_OPAQUE_COMMANDS: set[str] = set()


def _match(arg: str) -> tuple[str, bool] | None:
    """(option, value_is_attached) if `arg` is a global option, else None."""
    if arg in GLOBAL_OPTIONS:
        return arg, False
    if arg.startswith("--") and "=" in arg:
        name = arg.split("=", 1)[0]
        if GLOBAL_OPTIONS.get(name):
            return name, True
        return None
    if len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
        short = arg[:2]
        if GLOBAL_OPTIONS.get(short):
            return short, True  # -ojson, -nkube-system
        if short == "-v" and set(arg[1:]) == {"v"}:
            return arg, False  # -vv
    return None


def hoist_global_options(args: list[str]) -> list[str]:
    """Return args with every global option (and its value) moved before the first subcommand."""
    hoisted: list[str] = []
    rest: list[str] = []
    i = 0
    seen_command = False
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        m = _match(arg)
        if m is None:
            if not arg.startswith("-") and not seen_command:
                seen_command = True
                if arg in _OPAQUE_COMMANDS:
                    rest.extend(args[i:])
                    break
            rest.append(arg)
            i += 1
            continue
        name, attached = m
        if GLOBAL_OPTIONS.get(name) and not attached:
            if i + 1 >= len(args):
                raise UsageError(f"flag needs an argument: {name}")
            hoisted.extend(args[i:i + 2])
            i += 2
        else:
            hoisted.append(arg)
            i += 1
    return hoisted + rest
