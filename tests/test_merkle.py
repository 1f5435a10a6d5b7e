"""The Merkle tree behind selective disclosure: RFC 6962's tree, proofs that bind position and size."""

from __future__ import annotations

import hashlib

import pytest

from evalkit.trust.merkle import inclusion_proof, jsonl_leaves, leaf_hash, merkle_root, node_hash, verify_inclusion


def _leaves(n: int) -> list[bytes]:
    return [f'{{"id":"q{i}","values":{{"correct":{i % 2}.0}}}}'.encode() for i in range(n)]


def _rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH from RFC 6962 section 2.1, recursively: split at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc6962_root(leaves[:k]) + _rfc6962_root(leaves[k:])).digest()


def test_root_is_rfc6962_mth_for_sizes_0_to_40():
    for n in range(41):
        assert merkle_root(_leaves(n)) == _rfc6962_root(_leaves(n)).hex()


def test_pinned_roots_of_small_trees():
    a, b, c = b"a", b"b", b"c"
    assert merkle_root([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle_root([a]) == leaf_hash(a).hex()
    # Three leaves: the third is promoted, not duplicated.
    assert merkle_root([a, b, c]) == node_hash(node_hash(leaf_hash(a), leaf_hash(b)), leaf_hash(c)).hex()
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])


@pytest.mark.parametrize("n", range(1, 18))
def test_every_proof_verifies_and_every_tamper_fails(n):
    leaves = _leaves(n)
    root = merkle_root(leaves)
    other_root = merkle_root(_leaves(n + 1))
    for index in range(n):
        proof = inclusion_proof(leaves, index)
        assert verify_inclusion(leaves[index], index, n, proof, root)
        # A changed leaf (one byte), the wrong root, a truncated or extended proof, a flipped side.
        assert not verify_inclusion(leaves[index].replace(b"q", b"Q"), index, n, proof, root)
        assert not verify_inclusion(leaves[index], index, n, proof, other_root)
        if proof:
            assert not verify_inclusion(leaves[index], index, n, proof[:-1], root)
            flipped = [dict(proof[0], side="left" if proof[0]["side"] == "right" else "right")] + proof[1:]
            assert not verify_inclusion(leaves[index], index, n, flipped, root)
            changed = proof[:-1] + [dict(proof[-1], sha256="00" * 32)]
            assert not verify_inclusion(leaves[index], index, n, changed, root)
        assert not verify_inclusion(leaves[index], index, n, proof + [{"side": "right", "sha256": "00" * 32}], root)
        # The proof binds the position: it fails at every other index. (The tree size is bound by
        # the signature instead: verify-disclosure takes it from the signed report.)
        for wrong in range(n):
            if wrong != index:
                assert not verify_inclusion(leaves[index], wrong, n, proof, root)


def test_malformed_input_returns_false_instead_of_raising():
    leaves = _leaves(5)
    root = merkle_root(leaves)
    proof = inclusion_proof(leaves, 2)
    assert verify_inclusion(leaves[2], 2, 5, proof, root)
    for args in [
        (leaves[2], -1, 5, proof, root),
        (leaves[2], 5, 5, proof, root),
        (leaves[2], True, 5, proof, root),
        (leaves[2], 2, 5, proof, "zz" * 32),
        (leaves[2], 2, 5, proof, root[:-2]),
        (leaves[2], 2, 5, "not a list", root),
        (leaves[2], 2, 5, [{"side": "right", "sha256": "xyz"}] * len(proof), root),
        (leaves[2], 2, 5, [None] * len(proof), root),
        ("text, not bytes", 2, 5, proof, root),
    ]:
        assert verify_inclusion(*args) is False
    with pytest.raises(IndexError):
        inclusion_proof(leaves, 5)


def test_jsonl_leaves_split_on_newline_bytes_only():
    data = '{"a":"x\u2028y"}\n{"b":"\u0085"}\n'.encode()
    assert jsonl_leaves(data) == ['{"a":"x\u2028y"}'.encode(), '{"b":"\u0085"}'.encode()]
    assert jsonl_leaves(b"") == []
    assert jsonl_leaves(b"a\nb") == [b"a", b"b"]
