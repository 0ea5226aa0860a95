"""The hand-off's decisions (agent/handoff.py), without sockets: which announcements set which link down, and when
a link set down is set up again (its guest still writes to it: it never left)."""

from __future__ import annotations

import collections

from macvtapctl.agent.handoff import HANDOFF, RECENT, REVERT_AFTER, REVERTED, TARGET_UP, HandOff, rarp
from macvtapctl.agent.link_registry import LinkRegistry

MAC = "02:00:00:00:00:aa"
WHERE = ("/run/netns/pod", "net1")
POD = ("vms", "virt-launcher-mover-x7k2p")  # as the CNI ADD named it


class FakeLinks:
    """One pod link: up or down, its tx_dropped, or gone."""

    def __init__(self, present: bool = True) -> None:
        self.present, self.is_up, self.tx_dropped = present, True, 7
        self.calls: list[tuple[str, str, str, str]] = []

    def down(self, netns: str, ifname: str, mac: str) -> int | None:
        self.calls.append(("down", netns, ifname, mac))
        if not self.present:
            return None
        self.is_up = False
        return self.tx_dropped

    def state(self, netns: str, ifname: str, mac: str) -> tuple[bool, int] | None:
        return (self.is_up, self.tx_dropped) if self.present else None

    def up(self, netns: str, ifname: str, mac: str) -> bool:
        self.calls.append(("up", netns, ifname, mac))
        self.is_up = self.present
        return self.present


def watcher(present: bool = True) -> tuple[HandOff, LinkRegistry, FakeLinks, list[str]]:
    registry = LinkRegistry()
    registry.attach(MAC.upper(), *WHERE, "eth1", POD)
    links = FakeLinks(present)
    counted: list[str] = []
    h = HandOff.__new__(HandOff)  # no packet sockets: only the decisions are under test
    h.registry, h.links = registry, links
    h.on_handoff, h.on_revert = (lambda: counted.append("handoff")), (lambda: counted.append("reverted"))
    h.watched, h.events = {}, collections.deque(maxlen=RECENT)
    h.told = []  # type: ignore[attr-defined]
    h.tell = lambda pod, reason, text: h.told.append((pod, reason, text))  # type: ignore[attr-defined]
    return h, registry, links, counted


def test_an_announcement_on_the_links_own_nic_sets_it_down_once() -> None:
    h, registry, links, counted = watcher()
    h.seen(MAC, "eth1")
    assert links.calls == [("down", *WHERE, MAC)] and counted == ["handoff"] and not links.is_up
    assert registry.attached_to(MAC) is None  # forgotten: the next announcement is not acted on again
    h.seen(MAC, "eth1")
    assert len(links.calls) == 1
    assert [e["event"] for e in h.recent()] == ["handoff"] and h.recent()[0]["mac"] == MAC
    [(pod, reason, text)] = h.told  # type: ignore[attr-defined]
    assert pod == POD and reason == HANDOFF and MAC in text and "net1" in text


def test_other_nics_and_other_macs_change_nothing() -> None:
    h, registry, links, counted = watcher()
    h.seen(MAC, "e2eshim")  # the node's macvlan shim receives the VM's frames locally
    h.seen("02:00:00:00:00:bb", "eth1")
    assert links.calls == [] and counted == [] and registry.attached_to(MAC) is not None and h.recent() == []
    assert h.told == []  # type: ignore[attr-defined]


def test_a_link_that_is_gone_stays_known_and_uncounted() -> None:
    h, registry, links, counted = watcher(present=False)  # the pod ended, or its link has another MAC now
    h.seen(MAC, "eth1")
    assert len(links.calls) == 1 and counted == [] and registry.attached_to(MAC) is not None and not h.watched


def test_del_forgets_the_link() -> None:
    h, registry, links, _ = watcher()
    registry.detach(*WHERE)
    h.seen(MAC, "eth1")
    assert links.calls == []


def test_a_guest_that_moved_writes_nothing_and_its_link_stays_down_until_it_is_gone() -> None:
    h, _, links, counted = watcher()
    h.seen(MAC, "eth1")
    links.tx_dropped += REVERT_AFTER - 1  # a flushed queue is not a running guest
    h.check()
    assert not links.is_up and counted == ["handoff"] and WHERE in h.watched
    links.present = False  # the source pod ended: the hand-off is over
    h.check()
    assert h.watched == {} and counted == ["handoff"]


def test_a_guest_still_writing_to_its_down_link_gets_it_back() -> None:
    h, registry, links, counted = watcher()
    h.seen(MAC, "eth1")
    links.tx_dropped += REVERT_AFTER
    h.check()
    assert links.is_up and links.calls[-1] == ("up", *WHERE, MAC) and counted == ["handoff", "reverted"]
    assert registry.attached_to(MAC) == (*WHERE, "eth1") and h.watched == {}
    assert [e["event"] for e in h.recent()] == ["handoff", "reverted"]
    assert [(pod, reason) for pod, reason, _ in h.told] == [(POD, HANDOFF), (POD, REVERTED)]  # type: ignore[attr-defined]
    h.seen(MAC, "eth1")  # known again: the next announcement is acted on
    assert not links.is_up and counted[-1] == "handoff"


class FakeTarget(FakeLinks):
    """A migration target's link, attached parked: down, its tx_dropped, the announcements sent from it."""

    def __init__(self) -> None:
        super().__init__()
        self.is_up, self.announced = False, 0

    def announce(self, netns: str, ifname: str, mac: str) -> None:
        self.calls.append(("announce", netns, ifname, mac))
        self.announced += 1


def parked() -> tuple[HandOff, LinkRegistry, FakeTarget, list[str]]:
    registry = LinkRegistry()
    links = FakeTarget()
    registry.park(MAC.upper(), *WHERE, "eth1", links.tx_dropped, POD)
    h, _, _, counted = watcher()
    h.registry, h.links = registry, links
    h.on_target_up = lambda: counted.append("target-up")
    return h, registry, links, counted


def test_a_parked_target_stays_down_and_out_of_the_l2_domain_until_its_guest_writes() -> None:
    h, registry, links, counted = parked()
    h.check_parked()
    assert not links.is_up and links.calls == [] and counted == []
    assert registry.attached_to(MAC) is None and registry.is_held_down(*WHERE)
    h.seen(MAC, "eth1")  # the guest, still on its source node, sends an ARP: this node's parked link is not it
    assert links.calls == [] and registry.parked_links() == [{"mac": MAC, "netns": WHERE[0], "ifname": WHERE[1],
                                                               "lower": "eth1"}]


def test_the_first_frame_its_guest_writes_sets_it_up_attached_and_announced() -> None:
    h, registry, links, counted = parked()
    links.tx_dropped += 1  # QEMU's announcement as the guest resumes here, dropped by the down link
    h.check_parked()
    assert links.is_up and links.calls == [("up", *WHERE, MAC), ("announce", *WHERE, MAC)]
    assert counted == ["target-up"] and registry.attached_to(MAC) == (*WHERE, "eth1")
    assert registry.parked_links() == [] and not registry.is_held_down(*WHERE)
    assert [e["event"] for e in h.recent()] == ["target-up"]
    [(pod, reason, text)] = h.told  # type: ignore[attr-defined]
    assert pod == POD and reason == TARGET_UP and "net1" in text and MAC in text
    h.check_parked()
    assert len(links.calls) == 2  # once
    h.seen(MAC, "eth1")  # known now like any attached link: a later migration away from here is handed off
    assert links.calls[-1] == ("down", *WHERE, MAC)


def test_a_parked_target_whose_pod_ended_is_forgotten_and_one_unreadable_for_now_is_kept(tmp_path) -> None:
    h, registry, links, counted = parked()
    links.present = False
    h.check_parked()  # its namespace path (WHERE[0]) does not exist here: the pod ended, the migration did not end here
    assert registry.parked_links() == [] and counted == [] and not registry.is_held_down(*WHERE)
    netns = tmp_path / "pod"
    netns.touch()
    registry.park(MAC, str(netns), "net1", "eth1", 0, POD)
    h.check_parked()  # the namespace is there, the link cannot be read right now: read again next time
    assert [p["netns"] for p in registry.parked_links()] == [str(netns)]


def test_a_parked_target_someone_else_set_up_is_in_the_l2_domain_all_the_same() -> None:
    h, registry, links, counted = parked()
    links.is_up = True  # the runtime set it up before its guest wrote anything
    h.check_parked()
    assert registry.attached_to(MAC) == (*WHERE, "eth1") and registry.parked_links() == []
    assert ("up", *WHERE, MAC) not in links.calls and counted == ["target-up"]


def test_del_of_a_parked_target_forgets_it() -> None:
    h, registry, links, _ = parked()
    registry.detach(*WHERE)
    links.tx_dropped += 5
    h.check_parked()
    assert links.calls == [] and registry.parked_links() == [] and not registry.is_held_down(*WHERE)


def test_a_handed_off_source_is_held_down_until_it_is_gone_or_reverted() -> None:
    h, registry, links, _ = watcher()
    h.seen(MAC, "eth1")
    assert registry.is_held_down(*WHERE)  # CNI CHECK does not call it broken
    links.tx_dropped += REVERT_AFTER
    h.check()
    assert not registry.is_held_down(*WHERE)


def test_the_announcement_is_qemus_rarp() -> None:
    frame = rarp(MAC)
    assert len(frame) == 60 and frame[:6] == b"\xff" * 6 and frame[6:12] == bytes.fromhex(MAC.replace(":", ""))
    assert frame[12:14] == b"\x80\x35" and frame[14:22] == bytes([0, 1, 8, 0, 6, 4, 0, 3])
    assert frame[22:28] == frame[32:38] == frame[6:12] and frame[28:32] == frame[38:42] == bytes(4)
