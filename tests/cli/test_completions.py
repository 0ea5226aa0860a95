"""The completion scripts in completions/: generated from the app (`make completions`), never stale, and loaded
into a real bash they complete: bash's own registration (`complete -p`) is looked up and called as on TAB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = {"source_bash": "macvtapctl.bash", "source_zsh": "_macvtapctl", "source_fish": "macvtapctl.fish"}
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("mode", sorted(FILES))
def test_the_checked_in_scripts_are_what_the_app_generates(mode: str) -> None:
    out = subprocess.run([str(BIN / "macvtapctl")], check=True, capture_output=True, text=True,
                         env={**os.environ, "_MACVTAPCTL_COMPLETE": mode})
    assert out.stdout == (REPO / "completions" / FILES[mode]).read_text(), "stale: run `make completions`"


def bash_complete(line: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash offers for `line` + TAB, with completions/macvtapctl.bash loaded."""
    script = r'''
set -e
source "$1"
spec=$(complete -p macvtapctl)
fn=${spec#*-F }; fn=${fn%% *}
read -r -a COMP_WORDS <<< "$2"
[[ "$2" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
"$fn" macvtapctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''
    bash = shutil.which("bash")
    assert bash, "bash is required"
    out = subprocess.run([bash, "--norc", "--noprofile", "-c", script, "bash",
                          str(REPO / "completions" / "macvtapctl.bash"), line], check=True, capture_output=True,
                         text=True, timeout=30,
                         env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})})
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completes_commands_and_subcommands() -> None:
    assert bash_complete("macvtapctl ex") == ["expose", "exposed"]
    assert bash_complete("macvtapctl nad ") == ["create", "list", "delete"]
    assert "--instancetype" in bash_complete("macvtapctl vm create web --ins")


def test_fish_completes_commands_and_subcommands() -> None:
    """fish (Debian's package; .ci/run installs it) asked with `complete -C`, the script loaded."""
    fish = shutil.which("fish")
    assert fish, "fish is required (apt-get install fish)"
    script = 'source $argv[1]; complete -C "macvtapctl ex"; echo ---; complete -C "macvtapctl nad "'
    out = subprocess.run([fish, "--no-config", "-c", script, str(REPO / "completions" / "macvtapctl.fish")],
                         check=True, capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}).stdout
    first, second = out.split("---\n")
    assert [line.split("\t")[0] for line in first.splitlines()] == ["expose", "exposed"]
    assert sorted(line.split("\t")[0] for line in second.splitlines()) == ["create", "delete", "list"]
