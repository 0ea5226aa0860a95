"""Where the harness's build recipes and sources sit (shell, C, Go, CRDs, pins: not Python, so not in this
package), named once."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTROLPLANE_SRC = REPO / "tests" / "controlplane"  # build.sh (Kubernetes), pins.env, crds/
NODE_SRC = REPO / "tests" / "node"  # build.sh (containerd, runc, CNI plugins, Multus), pins.env, guest/, images/
KUBEVIRT_SRC = REPO / "tests" / "kubevirt"  # build.sh (admission fixture), runtime/build.sh (KubeVirt's images)
INJECTOR_BUILD = REPO / "tests" / "injector" / "build.sh"  # network-resources-injector (NRI_VERSION)
UPSTREAM_BUILD = REPO / "tests" / "compat" / "build.sh"  # upstream macvtap-cni from ../shared/upstream
