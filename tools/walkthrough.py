"""docs/getting-started.md: "from an empty cluster to a VM on macvtap", every command's output captured by running
it against a fresh local control plane (KubeVirt's CRDs and admission, tests/controlplane), so the page cannot go
stale: `--check` (run by a test) fails when what the commands print differs from the page.

    python tools/walkthrough.py            run the commands, write the page
    python tools/walkthrough.py --check    exit 1 when the page differs
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PAGE = REPO / "docs" / "getting-started.md"

# (what the step does, the command). Commands run with KUBECONFIG pointing at the fresh cluster.
STEPS: list[tuple[str, str]] = [
    ("Register the macvtap binding in KubeVirt, expose a NIC to VMs under a stable resource name, and create the "
     "NetworkAttachmentDefinition that requests it — one step:",
     "macvtapctl setup eth0 --name dataplane"),
    ("Every command can run twice; the second run changes nothing and says so:",
     "macvtapctl setup eth0 --name dataplane"),
    ("What is exposed, and the NADs that use it:", "macvtapctl exposed"),
    ("", "macvtapctl nad list"),
    ("Deploy the node agent (device plugin + CNI) on every node; here validated by the API server only "
     "(`--dry-run=server`), with an image you built and pushed (docs/install.md):",
     "macvtapctl install --image registry.example/macvtapctl/agent:v0.1.0 --dry-run=server"),
    ("A VM on the network, with a stable MAC (KubeVirt's own admission accepts it):",
     "macvtapctl vm create web --network dataplane --mac auto --apply"),
    ("Lint every VM that uses macvtap:", "macvtapctl vm check --all"),
    ("Ask why this VM would have no network. This cluster has no node and no agent, so doctor says exactly that, "
     "with the fix (exit code 8: an error finding):", "macvtapctl doctor web"),
]

INTRO = """# Getting started: from an empty cluster to a VM on macvtap

Every command below was run, in this order, against an empty local control plane serving KubeVirt's CRDs and
admission (`make cluster-up`); its output is pasted as printed. `tools/walkthrough.py` re-runs the commands and a
test fails when the output differs from this page, so what you read is what you get.

You need: a cluster with KubeVirt and Multus, `kubectl` access as a cluster admin, and `macvtapctl` (see the
README for pipx, krew and the agent image).
"""


def run_steps() -> str:
    from tests.harness.controlplane import ControlPlane, kubevirt_pins

    pin = kubevirt_pins()[-1]
    with tempfile.TemporaryDirectory(prefix="mvcwalk") as tmp:
        cp = ControlPlane(Path(tmp) / "cp", kubevirt_version=pin, kubevirt_pin=pin)
        cp.start()
        try:
            env = {**os.environ, "KUBECONFIG": str(cp.admin_kubeconfig), "NO_COLOR": "1", "COLUMNS": "120"}
            env.pop("CI", None)
            out = [INTRO.rstrip("\n")]
            for text, command in STEPS:
                argv = shlex.split(command)
                p = subprocess.run([sys.executable, "-m", "macvtapctl", *argv[1:]], env=env, cwd=tmp,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                                   check=False)
                if text:
                    out += ["", text]
                shown = p.stdout.rstrip("\n")
                code = "" if p.returncode == 0 else f"\n(exit code {p.returncode})"
                out += ["", "```console", f"$ {command}", *(shown.splitlines() if shown else []), "```" + code]
            return "\n".join(out).rstrip("\n") + "\n"
        finally:
            cp.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    page = run_steps()
    if a.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            import difflib

            sys.stderr.writelines(difflib.unified_diff(
                PAGE.read_text().splitlines(True) if PAGE.exists() else [], page.splitlines(True),
                "docs/getting-started.md", "what the commands print now"))
            return 1
        return 0
    PAGE.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
