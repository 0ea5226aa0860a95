"""docs/reference.md and the man page are what the app says (tools/clidocs.py walks the lazy command tree)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_reference_and_the_man_page_are_not_stale() -> None:
    r = subprocess.run([sys.executable, str(REPO / "tools" / "clidocs.py"), "--check"], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_the_reference_covers_every_command_option_and_env_var() -> None:
    import click

    from tools.clidocs import params, tree

    doc = (REPO / "docs" / "reference.md").read_text()
    paths = list(tree())
    assert len(paths) > 20  # root, every command, every sub-command
    for path, cmd in paths:
        assert f"## {' '.join(['macvtapctl', *path])}\n" in doc
        _args, opts = params(cmd)
        for o in opts:
            assert f"`{o.opts[0]}`" in doc, (path, o.opts)
            if isinstance(o.envvar, str):
                assert f"`{o.envvar}`" in doc
        assert isinstance(cmd, click.Command)
    man = (REPO / "docs" / "macvtapctl.1").read_text()
    assert man.startswith(".TH MACVTAPCTL 1") and "\\-\\-instancetype" in man


def test_every_command_argument_and_option_says_what_it_is() -> None:
    """Explicit help on everything a user can type (`setup --help` once listed options with no text)."""
    from tools.clidocs import params, tree

    missing = []
    for path, cmd in tree():
        if not (cmd.help or cmd.short_help):
            missing.append(" ".join(path) or "macvtapctl")
        args, opts = params(cmd)
        missing += [f"{' '.join(path)} {p.name}" for p in [*args, *opts] if not (getattr(p, "help", None) or "")]
    assert missing == []
