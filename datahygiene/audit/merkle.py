"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs.

The log of exclusions is an append-only list of leaves; its tree head commits to all
of them. We use RFC 9162's hashing exactly (leaf = SHA-256(0x00 || leaf), node =
SHA-256(0x01 || left || right), empty tree = SHA-256("")) so any independent RFC 6962
/ 9162 implementation -- Go's transparency-dev/merkle, for one -- recomputes our roots
and checks our proofs. The verifiers follow RFC 9162 sections 2.1.3.2 and 2.1.4.2
literally, including the final ``sn == 0`` test: a consistency proof that stops
before it has walked the whole second tree must be rejected, or a proof for a
*smaller* second tree would be accepted for a larger one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(hashes: Sequence[bytes]) -> bytes:
    """Tree head over leaf hashes, in O(n) time and O(log n) memory.

    Keeps a stack of complete subtrees (merged while the top two have equal size);
    folding what is left from the right gives RFC 9162's MTH, whose left subtree is
    always the largest power of two below n.
    """
    if not hashes:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []
    for h in hashes:
        size, cur = 1, h
        while stack and stack[-1][0] == size:
            left = stack.pop()[1]
            cur = node_hash(left, cur)
            size *= 2
        stack.append((size, cur))
    cur = stack.pop()[1]
    while stack:
        cur = node_hash(stack.pop()[1], cur)
    return cur


def _mth(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    return root(hashes[lo:hi])


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]) for the leaf at ``index``."""
    n = len(hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of size {n}")
    out: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            out.append(_mth(hashes, lo + k, hi))
            hi = lo + k
        else:
            out.append(_mth(hashes, lo, lo + k))
            lo, m = lo + k, m - k
    out.reverse()  # the path is listed from the leaf up
    return out


def consistency_proof(size1: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n]): the first ``size1`` leaves are a prefix."""
    n = len(hashes)
    if not 0 <= size1 <= n:
        raise ValueError(f"size {size1} is outside a tree of size {n}")
    if size1 in (0, n):
        return []
    out: list[bytes] = []
    lo, hi, m, complete = 0, n, size1, True
    while True:
        if m == hi - lo:
            if not complete:
                out.append(_mth(hashes, lo, hi))
            break
        k = _split(hi - lo)
        if m <= k:
            out.append(_mth(hashes, lo + k, hi))
            hi = lo + k
        else:
            out.append(_mth(hashes, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    out.reverse()
    return out


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2; None when the proof is malformed for (index, size)."""
    if not 0 <= index < size or len(leaf) != HASH_SIZE:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], head: bytes) -> bool:
    r = root_from_inclusion(index, size, leaf, proof)
    return r is not None and r == head


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes,
                       root2: bytes) -> bool:
    """RFC 9162 2.1.4.2. Rejects a proof with any node left over or missing, and one
    that does not walk the second tree to its last leaf (``sn`` must end at 0)."""
    if size1 < 0 or size2 < size1:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0
