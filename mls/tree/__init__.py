"""The ratchet tree (RFC 9420 §4, §7): index math, nodes, public tree, TreeKEM."""
