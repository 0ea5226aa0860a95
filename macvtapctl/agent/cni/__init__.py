"""The CNI half of the agent: the socket server the static shim talks to, its wire format, the CNI protocol
(parse, validate, results) and the datapath (ADD/DEL/CHECK/STATUS/GC on real links)."""
