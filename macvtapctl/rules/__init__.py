"""The pure rules: what the cluster's objects mean and which state is wrong, as functions of plain dicts. No I/O:
`kube/` reads, `ops/` composes, these judge (one judge per fact)."""
