"""Issue 24: one installer of system prerequisites. Its decisions on described machines (nothing installed, nothing
run), and that `.ci/run`, `make demo` and `make test` go through it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import prereqs

REPO = Path(__file__).resolve().parents[2]

ALL_PATHS = {p for n in prereqs.NEEDS for p in n.paths}
ALL_COMMANDS = {n.command for n in prereqs.NEEDS if n.command}


def machine(*missing: str) -> dict[str, object]:
    """A machine with everything but `missing` (commands or paths)."""
    gone = set(missing)
    return {"exists": lambda p: p in ALL_PATHS and p not in gone,
            "which": lambda c: f"/usr/bin/{c}" if c in ALL_COMMANDS and c not in gone else None}


def fresh_debian() -> dict[str, object]:
    """Go, a compiler, make and flock, none of the Debian packages the real node needs."""
    return machine("ip", "/usr/sbin/runc", "/bin/busybox", "mmdebstrap", "/usr/bin/qemu-system-x86_64",
                   "/usr/sbin/dnsmasq", "fish", "buildah", "nft", "mkfs.fat", "/usr/sbin/mkfs.fat", "/sbin/mkfs.fat",
                   "syslinux", "/usr/lib/syslinux/modules/bios/ldlinux.c32", "mcopy")


def test_nothing_missing_is_a_no_op() -> None:
    for purpose in prereqs.PURPOSES:
        plan = prereqs.decide(purpose, root=True, have_apt=True, **machine())  # type: ignore[arg-type]
        assert plan.install == [] and plan.refusal == []


def test_root_on_a_fresh_machine_installs_what_each_purpose_needs() -> None:
    ci = prereqs.decide("ci", root=True, have_apt=True, **fresh_debian())  # type: ignore[arg-type]
    assert ci.refusal == []
    assert ci.packages == sorted(["iproute2", "runc", "busybox-static", "mmdebstrap", "qemu-system-x86",
                                  "dnsmasq-base", "fish", "buildah", "nftables", "dosfstools", "syslinux",
                                  "syslinux-common", "mtools"])
    test = prereqs.decide("test", root=True, have_apt=True, **fresh_debian())  # type: ignore[arg-type]
    assert "buildah" not in test.packages and "qemu-system-x86" in test.packages
    demo = prereqs.decide("demo", root=True, have_apt=True, **fresh_debian())  # type: ignore[arg-type]
    # The root demo starts a VM through KubeVirt on the real node: the guest disk's tools and the LAN's dnsmasq too.
    assert demo.packages == sorted(["busybox-static", "iproute2", "mmdebstrap", "nftables", "runc",
                                    "qemu-system-x86", "dnsmasq-base", "dosfstools", "syslinux", "syslinux-common",
                                    "mtools"])
    assert set(demo.packages) == {p for p in test.packages if p != "fish"}  # fish: the completion tests only


def test_without_root_demo_runs_the_control_plane_only_and_says_so() -> None:
    plan = prereqs.decide("demo", root=False, have_apt=True, **fresh_debian())  # type: ignore[arg-type]
    assert plan.refusal == [] and plan.install == []
    assert any("need root" in n and "control-plane demo only" in n for n in plan.notes)


def test_without_root_test_refuses_naming_every_missing_piece_and_the_command() -> None:
    plan = prereqs.decide("test", root=False, have_apt=True, **fresh_debian())  # type: ignore[arg-type]
    text = "\n".join(plan.refusal)
    assert "need root" in text and "MACVTAPCTL_SKIP_ROOT_TESTS=1" in text
    assert "Debian package fish" in text and "sudo apt-get install -y fish" in text
    assert plan.install == []


def test_without_root_test_with_the_named_opt_out_needs_only_the_unprivileged_parts() -> None:
    plan = prereqs.decide("test", root=False, have_apt=True, skip_root_tests=True,
                          **machine("fish"))  # type: ignore[arg-type]
    assert [line for line in plan.refusal if "root" in line and "skip" in line] == []
    assert "sudo apt-get install -y fish" in plan.refusal[-1]


def test_no_package_manager_names_the_packages_instead_of_installing() -> None:
    plan = prereqs.decide("demo", root=True, have_apt=False, **machine("/usr/sbin/runc"))  # type: ignore[arg-type]
    assert plan.install == []
    assert "no apt-get" in plan.refusal[-1] and "runc" in plan.refusal[-1]


def test_go_is_not_installable_here_and_says_where_it_comes_from() -> None:
    plan = prereqs.decide("demo", root=True, have_apt=True, **machine("go"))  # type: ignore[arg-type]
    assert len(plan.refusal) == 1 and "go.dev/dl" in plan.refusal[0]


def test_an_unknown_purpose_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        prereqs.decide("bench", root=True, have_apt=True, **machine())  # type: ignore[arg-type]


def test_the_cli_refuses_in_seconds_without_root_and_installs_nothing() -> None:
    # As a non-root user would run it (geteuid faked; --dry-run so nothing could be installed anyway).
    probe = ("import os, sys; os.geteuid = lambda: 1000; from tools import prereqs; "
             "sys.exit(prereqs.main(['test', '--dry-run']))")
    r = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin"}, check=False)
    assert r.returncode == prereqs.EXIT_MISSING, r.stderr
    assert "need root" in r.stderr and "Traceback" not in r.stderr


def test_ci_make_demo_and_make_test_call_the_same_installer() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 tools/prereqs.py ci" in ci
    assert "apt-get" not in ci, ".ci/run keeps no second list of packages"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^prereqs:\n\t@\$\(PYTHON\) tools/prereqs\.py \$\(PREREQS_FOR\)$", makefile, re.M)
    assert re.search(r"^test: prereqs ", makefile, re.M)
    assert re.search(r"^demo: PREREQS_FOR = demo$", makefile, re.M)
    assert re.search(r"^demo: prereqs ", makefile, re.M)
    assert re.search(r"^node-up: prereqs ", makefile, re.M)


def test_ci_says_when_compat_is_not_run() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "NOT RUN: make compat" in ci


def test_make_demo_builds_only_what_it_runs() -> None:
    """The demo runs one KubeVirt (the runtime's pin, or the newest): it does not build every pin's admission
    fixture the tests run (~7 min cold, issue 37)."""
    plan = subprocess.run(["make", "-n", "demo"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "bash tests/controlplane/build.sh" in plan
    assert "tests/kubevirt/build.sh" not in plan and "KUBEVIRT_PINS" not in plan
    tests = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "tests/kubevirt/build.sh" in tests  # the tests do run every pin
