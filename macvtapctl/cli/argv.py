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
    "--as": True,
    "--as-uid": True,
    "--as-group": True,
    "--output": True,
    "-o": True,
    "--verbose": False,
    "-v": False,
    "--quiet": False,
    "-q": False,
}


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


def command_path(args: list[str], limit: int = 2) -> list[str]:
    """The leading words naming the command (`vm create`), global options and their values skipped."""
    path: list[str] = []
    i = 0
    while i < len(args) and len(path) < limit:
        arg = args[i]
        m = _match(arg)
        if m is not None:
            i += 2 if GLOBAL_OPTIONS.get(m[0]) and not m[1] else 1
            continue
        if arg.startswith("-"):
            break  # the command's own options begin
        path.append(arg)
        i += 1
    return path


def hoist_global_options(args: list[str], declared: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Return args with every global option (and its value) moved before the first subcommand — except the
    spellings in `declared`: a sub-command on the path declares an option of that name, and it is its own."""
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
            rest.append(arg)
            i += 1
            continue
        name, attached = m
        if seen_command and (name in declared or (name.startswith("-v") and "-v" in declared)):
            rest.append(arg)  # the sub-command's own option (Click parses it, with its value)
            i += 1
            continue
        if GLOBAL_OPTIONS.get(name) and not attached:
            if i + 1 >= len(args):
                raise UsageError(f"flag needs an argument: {name}")
            hoisted.extend(args[i:i + 2])
            i += 2
        else:
            hoisted.append(arg)
            i += 1
    return hoisted + rest
