"""Which macvtap device plugins the kubelet is connected to, read from /proc/net/unix rows (issue 37 item 5): what
`uninstall --restore-upstream` waits for before the agent leaves a node."""

from __future__ import annotations

from macvtapctl.rules.plugin_sockets import connected_paths, kubelet_plugins, parse_unix, resource_of

DIR = "/var/lib/kubelet/device-plugins"
UP = f"{DIR}/macvtap.network.kubevirt.io_dataplane"
OURS = f"{DIR}/.macvtapctl-dataplane.sock.binding"  # bound under this name, then renamed into place
DP = "macvtap.network.kubevirt.io/dataplane"

HEADER = "Num       RefCount Protocol Flags    Type St Inode Path\n"


def row(path: str, *, listening: bool = False, state: str = "03", inode: int = 1000) -> str:
    flags = "00010000" if listening else "00000000"
    refs = "00000002" if listening else "00000003"
    return f"00000000d815231d: {refs} 00000000 {flags} 0001 {state} {inode} {path}".rstrip() + "\n"


def text(*rows: str) -> str:
    return HEADER + "".join(rows)


# What a node shows with both plugins registered: the kubelet's socket (listening, and the accepted connections
# of each plugin's Register call), each plugin listening and holding the kubelet's ListAndWatch connection, the
# kubelet's own ends (unbound: no path), a GPU plugin, an abstract socket and a path with a space.
BOTH = text(
    row(f"{DIR}/kubelet.sock", listening=True, state="01"),
    row(f"{DIR}/kubelet.sock"),
    row(UP, listening=True, state="01"),
    row(UP),
    row("//" + OURS, listening=True, state="01"),  # as gRPC's C core binds unix:///dir/x
    row("//" + OURS),
    row(""),
    row(""),
    row(f"{DIR}/nvidia-gpu.sock", listening=True, state="01"),
    row(f"{DIR}/nvidia-gpu.sock"),
    row("@/containerd-shim/abc.sock@", listening=True, state="01"),
    row("/run/my dir/x.sock", listening=True, state="01"),
    row("/run/my dir/x.sock"),
)


def test_rows_are_read_with_their_path_state_and_listening_flag() -> None:
    socks = parse_unix(BOTH)
    assert [s.path for s in socks if s.listening] == [f"{DIR}/kubelet.sock", UP, OURS, f"{DIR}/nvidia-gpu.sock",
                                                      "/run/my dir/x.sock"]  # no abstract one, a space kept
    assert all(not s.connected for s in socks if s.listening)
    assert connected_paths(socks) == {f"{DIR}/kubelet.sock", UP, OURS, f"{DIR}/nvidia-gpu.sock",
                                      "/run/my dir/x.sock"}


def test_a_socket_nobody_is_connected_to_or_that_no_longer_listens_is_not_connected() -> None:
    # Listening only: the plugin serves, the kubelet has not dialled it (macvtap-cni waits 10 s to register).
    assert connected_paths(parse_unix(text(row(UP, listening=True, state="01")))) == set()
    # A connected row without its listener: not a server we can vouch for.
    assert connected_paths(parse_unix(text(row(UP)))) == set()
    # Header only, a short line, a bad flags field: nothing, no error.
    assert parse_unix(HEADER + "garbage\n0000: 0002 0000 zz 0001 01 1 /x\n") == []


def test_sockets_are_named_by_resource_as_each_plugin_binds_them() -> None:
    assert resource_of(UP, DIR) == (DP, False)
    assert resource_of("/elsewhere/macvtap.network.kubevirt.io_dataplane", DIR) == (DP, False)  # its own mounts
    assert resource_of(OURS, DIR) == (DP, True)
    assert resource_of("//" + OURS, DIR + "/") == (DP, True)
    assert resource_of(f"{DIR}/macvtapctl-dataplane.sock", DIR) == (DP, True)
    assert resource_of("/tmp/other/macvtapctl-dataplane.sock", DIR) is None  # not in our plugin dir
    for other in (f"{DIR}/kubelet.sock", f"{DIR}/nvidia-gpu.sock", f"{DIR}/macvtap.network.kubevirt.io_",
                  f"{DIR}/macvtapctl-.sock"):
        assert resource_of(other, DIR) is None, other


def test_the_report_says_by_resource_whether_the_kubelet_holds_ours_and_which_others() -> None:
    assert kubelet_plugins(BOTH, DIR, [DP, "macvtap.network.kubevirt.io/other"]) == {
        DP: {"advertised": True, "ours": True, "others": [UP]},
        "macvtap.network.kubevirt.io/other": {"advertised": True, "ours": False, "others": []}}
    # macvtap-cni rolled out but not registered yet: the kubelet holds only ours.
    before = text(row(UP, listening=True, state="01"), row(OURS, listening=True, state="01"), row(OURS))
    assert kubelet_plugins(before, DIR, [DP]) == {DP: {"advertised": True, "ours": True, "others": []}}
    # A resource only macvtap-cni serves is reported too, not advertised by the agent.
    assert kubelet_plugins(text(row(UP, listening=True, state="01"), row(UP)), DIR, []) == {
        DP: {"advertised": False, "ours": False, "others": [UP]}}
    assert kubelet_plugins("", DIR, [DP]) == {DP: {"advertised": True, "ours": False, "others": []}}
