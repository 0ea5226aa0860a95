"""The system prerequisites of `make demo`, `make test` and `.ci/run`: one list, one installer.

    python3 tools/prereqs.py demo|test|ci [--dry-run]

As root it installs what is missing with apt-get and says what; it does nothing when all is present. Without
root, or without apt-get, it fails before any build starts, naming every missing piece and the command that
installs it. Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

PURPOSES = ("demo", "test", "ci")
EXIT_MISSING = 2


@dataclass(frozen=True)
class Need:
    """One thing on the machine: found at any of `paths` (or as `command` on PATH), installed by `package`."""

    what: str  # what the project uses it for, in one phrase
    package: str | None  # the Debian package; None: not installable here (its `hint` says how)
    paths: tuple[str, ...] = ()
    command: str | None = None
    purposes: frozenset[str] = frozenset(PURPOSES)
    root_only: bool = False  # needed only for what runs as root (the real node, the datapath tests)
    hint: str = ""


# The one list. `.ci/run` runs purpose "ci", `make test` "test", `make demo` "demo".
NEEDS: tuple[Need, ...] = (
    Need("the Go-built fixtures (kube-apiserver, etcd, kubelet, containerd, Multus, KubeVirt)", None,
         command="go", hint="install Go 1.26 or newer from https://go.dev/dl and put it on PATH"),
    Need("the static CNI shim and the test images' helpers", "gcc", command="cc"),
    Need("static linking of the shim (libc.a)", "libc6-dev",
         paths=("/usr/lib/x86_64-linux-gnu/libc.a", "/usr/lib/aarch64-linux-gnu/libc.a", "/usr/lib/libc.a")),
    Need("the build steps", "make", command="make"),
    Need("one build at a time (flock)", "util-linux", command="flock"),
    Need("network namespaces, veth and macvtap links", "iproute2", command="ip", root_only=True),
    Need("the real node's container runtime, Debian's runc built with seccomp", "runc",
         paths=("/usr/sbin/runc",), root_only=True),
    Need("the test-pod image and the guest's initramfs", "busybox-static", paths=("/bin/busybox",),
         root_only=True),
    Need("the agent image's Debian base", "mmdebstrap", command="mmdebstrap", root_only=True),
    Need("the guest VMs", "qemu-system-x86", paths=("/usr/bin/qemu-system-x86_64",),
         purposes=frozenset({"test", "ci"}), root_only=True),
    Need("the LAN's DHCP server", "dnsmasq-base", paths=("/usr/sbin/dnsmasq",),
         purposes=frozenset({"test", "ci"}), root_only=True),
    Need("kube-proxy's nftables mode (pods reach the API server at the kubernetes Service)", "nftables",
         command="nft", root_only=True),
    Need("the guest's boot disk: a FAT filesystem", "dosfstools", command="mkfs.fat",
         paths=("/usr/sbin/mkfs.fat", "/sbin/mkfs.fat"), purposes=frozenset({"test", "ci"}), root_only=True),
    Need("the guest's boot disk: its boot loader", "syslinux", command="syslinux",
         purposes=frozenset({"test", "ci"}), root_only=True),
    Need("the guest's boot disk: syslinux's modules", "syslinux-common",
         paths=("/usr/lib/syslinux/modules/bios/ldlinux.c32",), purposes=frozenset({"test", "ci"}), root_only=True),
    Need("the guest's boot disk: files into it without mounting", "mtools", command="mcopy",
         purposes=frozenset({"test", "ci"}), root_only=True),
    Need("the completion tests, driven in real fish", "fish", command="fish", purposes=frozenset({"test", "ci"})),
    Need("make image, which builds the Containerfile", "buildah", command="buildah", purposes=frozenset({"ci"}),
         root_only=True),
)


@dataclass
class Plan:
    """What the installer decided: install `install`, or refuse with `refusal` lines; `notes` are said first."""

    install: list[Need] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def packages(self) -> list[str]:
        return sorted({n.package for n in self.install if n.package})


def present(need: Need, exists: Callable[[str], bool], which: Callable[[str], str | None]) -> bool:
    if need.command is not None and which(need.command) is not None:
        return True
    return any(exists(p) for p in need.paths)


def wanted(need: Need, purpose: str, *, root: bool) -> bool:
    """Whether `purpose` needs `need`. As root, the demo runs what the root tests run (the real node, KubeVirt, a
    guest VM leasing from the LAN's DHCP server), so it needs every root-only need of `test`: derived, not
    listed, so that a tool the tests' node starts using is the demo's too (issue 37: the demo once lacked the
    guest disk's tools and dnsmasq)."""
    if need.root_only and not root:
        return False
    if purpose == "demo" and need.root_only and "test" in need.purposes:
        return True
    return purpose in need.purposes


def decide(purpose: str, *, root: bool, have_apt: bool, exists: Callable[[str], bool],
           which: Callable[[str], str | None], skip_root_tests: bool = False,
           needs: Iterable[Need] = NEEDS) -> Plan:
    """Pure: what is missing for `purpose` on a machine described by the arguments, and what to do about it."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    plan = Plan()
    with_root_parts = root
    if not root:
        if purpose == "demo":
            plan.notes.append("make demo without root: the real node (kubelet, containerd, runc, Multus) and the "
                              "pod on macvtap need root; running the control-plane demo only")
        elif purpose == "test" and skip_root_tests:
            plan.notes.append("make test without root: the datapath and real-node tests are skipped by name "
                              "(MACVTAPCTL_SKIP_ROOT_TESTS=1)")
        else:
            plan.refusal.append(f"make {purpose} runs the datapath and real-node tests, which need root: run it "
                                "as root, or skip them by name with MACVTAPCTL_SKIP_ROOT_TESTS=1 make test")
    missing = [n for n in needs if wanted(n, purpose, root=with_root_parts) and not present(n, exists, which)]
    unpackaged = [n for n in missing if n.package is None]
    packaged = [n for n in missing if n.package is not None]
    for n in unpackaged:
        plan.refusal.append(f"missing: {n.command or n.paths[0]} ({n.what}): {n.hint}")
    if packaged:
        pkgs = " ".join(sorted({n.package for n in packaged if n.package}))
        if not root or not have_apt:
            why = "not root" if not root else "no apt-get on this machine"
            for n in packaged:
                plan.refusal.append(f"missing: {n.command or n.paths[0]} ({n.what}), Debian package {n.package}")
            cmd = f"sudo apt-get install -y {pkgs}" if have_apt else f"install the packages {pkgs} (Debian names)"
            plan.refusal.append(f"cannot install them here ({why}): {cmd}")
        else:
            plan.install = packaged
    return plan


def apply(plan: Plan, purpose: str, *, dry_run: bool) -> int:
    for note in plan.notes:
        print(f"prereqs: {note}", file=sys.stderr)
    if plan.refusal:
        for line in plan.refusal:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_MISSING
    if not plan.install:
        print(f"prereqs: everything make {purpose} needs is present", file=sys.stderr)
        return 0
    for n in plan.install:
        print(f"prereqs: installing {n.package} ({n.what})", file=sys.stderr)
    if dry_run:
        print("prereqs: --dry-run: installing nothing", file=sys.stderr)
        return 0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", *plan.packages]):
        # apt's chatter (debconf notes, progress) only when it fails.
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if r.returncode != 0:
            print(r.stdout[-4000:], file=sys.stderr)
            print(f"error: {' '.join(cmd)} exited {r.returncode}", file=sys.stderr)
            return EXIT_MISSING
    print(f"prereqs: installed {' '.join(plan.packages)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("purpose", choices=PURPOSES)
    p.add_argument("--dry-run", action="store_true", help="say what would be installed, install nothing")
    args = p.parse_args(argv)
    plan = decide(args.purpose, root=os.geteuid() == 0, have_apt=shutil.which("apt-get") is not None,
                  exists=lambda path: Path(path).exists(), which=shutil.which,
                  skip_root_tests=os.environ.get("MACVTAPCTL_SKIP_ROOT_TESTS") == "1")
    return apply(plan, args.purpose, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
