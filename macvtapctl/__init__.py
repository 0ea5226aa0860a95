"""macvtapctl: put KubeVirt virtual machines straight onto a node's L2 network with macvtap."""

__version__ = "0.1.0"
