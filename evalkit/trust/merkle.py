"""A Merkle tree over per-sample records, so one sample can be disclosed without the others.

Why: samples.jsonl may hold completions to harmful prompts and thousands of findings a partner does
not want to publish. The signed report carries the root of a Merkle tree whose leaves are the lines
of samples.jsonl; a single line plus its inclusion proof (about log2(n) hashes) then shows that this
line is in the signed report, and reveals nothing about the other lines beyond their count.

The tree is the one of RFC 6962 (Certificate Transparency), section 2.1, with SHA-256:

- leaf hash:      SHA-256(0x00 || line bytes)      (the line's UTF-8 bytes, without its newline)
- interior node:  SHA-256(0x01 || left || right)
- empty tree:     SHA-256("")

The 0x00/0x01 prefixes keep a leaf from ever being read as an interior node (second preimages).
Exact shape (equivalent to RFC 6962's split at the largest power of two below n): build level by
level from the leaves in file order, hashing adjacent pairs left to right; when a level has an odd
number of nodes its last node is promoted to the next level unchanged (never duplicated, unlike
Bitcoin's tree, so two different lists of lines never share a root).

An inclusion proof lists the sibling hashes from the leaf up to the root, each with its side. The
verifier derives every side from (index, number of leaves) alone and checks the recorded sides and
the proof's length against them, so a proof cannot be replayed for another position or tree size.

This module knows bytes and hashes only; which file the lines come from is the caller's business.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

MERKLE_SCHEME = "evalkit.merkle/v1 (RFC 6962 style, sha256)"

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf (one samples.jsonl line, without its newline)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def jsonl_leaves(data: bytes) -> list[bytes]:
    """The leaves of a JSONL file: its lines as bytes, split on b"\\n" only, newline removed.

    Splitting bytes (not str.splitlines) matters: a JSON string may hold U+2028 or U+0085 unescaped,
    which str.splitlines would treat as line breaks. A final newline does not make an empty leaf.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _next_level(level: list[bytes]) -> list[bytes]:
    paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])  # the odd node out is promoted unchanged
    return paired


def merkle_root(leaves: Sequence[bytes]) -> str:
    """Hex root of the tree over `leaves` (the leaf data, e.g. lines; hashed here with 0x00)."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [leaf_hash(leaf) for leaf in leaves]
    while len(level) > 1:
        level = _next_level(level)
    return level[0].hex()


def _sides(index: int, n_leaves: int) -> list[str]:
    """For leaf `index` of `n_leaves`, the side of each sibling on the path to the root, bottom up
    ("left": the sibling is hashed before the running node). Promoted levels have no sibling."""
    sides = []
    position, size = index, n_leaves
    while size > 1:
        if position % 2 == 1:
            sides.append("left")
        elif position + 1 < size:
            sides.append("right")
        position //= 2
        size = (size + 1) // 2
    return sides


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[dict[str, Any]]:
    """The audit path of leaf `index`: [{"side": "left"|"right", "sha256": hex sibling}, …],
    from the leaf's sibling up to the root's child. Empty for a one-leaf tree."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
    level = [leaf_hash(leaf) for leaf in leaves]
    position = index
    proof: list[dict[str, Any]] = []
    while len(level) > 1:
        if position % 2 == 1:
            proof.append({"side": "left", "sha256": level[position - 1].hex()})
        elif position + 1 < len(level):
            proof.append({"side": "right", "sha256": level[position + 1].hex()})
        level = _next_level(level)
        position //= 2
    return proof


def _hex32(value: Any) -> bytes | None:
    if not isinstance(value, str) or len(value) != 64:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def verify_inclusion(
    leaf_bytes: bytes, index: int, n_leaves: int, proof: Sequence[Any], root: str
) -> bool:
    """True iff `leaf_bytes` is leaf `index` of a tree of `n_leaves` leaves with hex root `root`.

    Never raises on malformed input (wrong types, bad hex, a proof of the wrong length or with a
    side that does not match the position): it returns False.
    """
    if isinstance(index, bool) or isinstance(n_leaves, bool):
        return False
    if not isinstance(index, int) or not isinstance(n_leaves, int) or not 0 <= index < n_leaves:
        return False
    expected_root = _hex32(root)
    if expected_root is None or not isinstance(leaf_bytes, (bytes, bytearray)):
        return False
    sides = _sides(index, n_leaves)
    if not isinstance(proof, (list, tuple)) or len(proof) != len(sides):
        return False
    running = leaf_hash(bytes(leaf_bytes))
    for side, step in zip(sides, proof):
        if not isinstance(step, dict) or step.get("side") != side:
            return False
        sibling = _hex32(step.get("sha256"))
        if sibling is None:
            return False
        running = node_hash(sibling, running) if side == "left" else node_hash(running, sibling)
    return running == expected_root
