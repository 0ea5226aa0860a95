"""The agent's DHCP probe (doctor --probe-dhcp) on real links and frames: a "node" namespace whose lower device is a
veth to a "LAN" namespace; dnsmasq there answers, or nothing does. The probe's throwaway macvtap is gone after."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import ip

PROBE = """
import json, sys
from macvtapctl.agent import dhcp_probe
from macvtapctl.agent.netlink import host
print(json.dumps(dhcp_probe.probe(host(), sys.argv[1], timeout=float(sys.argv[2])).as_dict()))
"""


@pytest.fixture
def lan() -> Iterator[tuple[str, str]]:
    """(node namespace, LAN namespace), joined by the veth lowerd <-> lanpeer."""
    node, lan = "mvcdhn" + secrets.token_hex(3), "mvcdhl" + secrets.token_hex(3)
    ip("netns", "add", node)
    ip("netns", "add", lan)
    try:
        ip("-n", node, "link", "add", "lowerd", "type", "veth", "peer", "name", "lanpeer", "netns", lan)
        ip("-n", node, "link", "set", "lowerd", "up")
        ip("-n", lan, "addr", "add", "192.0.2.1/24", "dev", "lanpeer")
        ip("-n", lan, "link", "set", "lanpeer", "up")
        yield node, lan
    finally:
        ip("netns", "del", node, check=False)
        ip("netns", "del", lan, check=False)


def probe(node: str, lower: str, timeout: float = 8) -> dict:
    out = subprocess.run(["ip", "netns", "exec", node, sys.executable, "-c", PROBE, lower, str(timeout)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def links(node: str) -> list[str]:
    return [link["ifname"] for link in json.loads(ip("-n", node, "-j", "link", "show").stdout)]


def test_an_offer_from_the_lans_dhcp_server_names_it_and_the_address(lan: tuple[str, str], tmp_path: Path) -> None:
    node, lan_ns = lan
    dnsmasq = subprocess.Popen(["ip", "netns", "exec", lan_ns, "dnsmasq", "--keep-in-foreground", "--no-resolv",
                                "--no-hosts", "--port=0", "--interface=lanpeer", "--bind-interfaces",
                                "--dhcp-range=192.0.2.100,192.0.2.110,255.255.255.0,1h",
                                f"--dhcp-leasefile={tmp_path / 'leases'}", "--user=root"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # dnsmasq binds its socket
        got = probe(node, "lowerd")
    finally:
        dnsmasq.terminate()
        dnsmasq.wait(timeout=10)
    assert got["offered"] is True and got["server"] == "192.0.2.1", got
    assert got["address"].startswith("192.0.2.1") and 100 <= int(got["address"].rsplit(".", 1)[1]) <= 110, got
    assert [n for n in links(node) if n.startswith("mvt")] == []  # the throwaway macvtap is gone


def test_no_server_no_offer_and_an_unknown_lower_is_said(lan: tuple[str, str]) -> None:
    node, _ = lan
    got = probe(node, "lowerd", timeout=1)
    assert got["offered"] is False and got["detail"] == "no DHCP offer on lowerd within 1s", got
    assert [n for n in links(node) if n.startswith("mvt")] == []
    missing = probe(node, "nosuch0", timeout=1)
    assert missing["offered"] is False and missing["detail"] == "nosuch0 does not exist on this node", missing
