"""The node agent: the macvtap CNI datapath (and, later, the kubelet device plugin)."""
