"""RFC 6962 / 9162 hashing and proofs against published test vectors.

The vectors are facts copied from transparency-dev/merkle (proof/verify_test.go and
rfc6962/rfc6962_test.go), the Go implementation Certificate Transparency logs use:
eight leaves, the root of each prefix, and known inclusion and consistency proofs.
"""

from __future__ import annotations

import hashlib

import pytest

from datahygiene.audit import merkle


def h(s: str) -> bytes:
    return bytes.fromhex(s)


LEAVES = [h(""), h("00"), h("10"), h("2021"), h("3031"), h("40414243"), h("5051525354555657"),
          h("606162636465666768696a6b6c6d6e6f")]
ROOTS = [  # root of the first 1..8 leaves
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf number counted from 1, tree size, proof)
INCLUSION = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
HASHES = [merkle.leaf_hash(x) for x in LEAVES]
SOME = h("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_hasher_vectors() -> None:
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root([]) == merkle.EMPTY_ROOT
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.leaf_hash(b"L123456").hex() == \
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert merkle.node_hash(b"N123", b"N456").hex() == \
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


@pytest.mark.parametrize("n", range(1, 9))
def test_roots(n: int) -> None:
    assert merkle.root(HASHES[:n]).hex() == ROOTS[n - 1]


def _reference_root(hs: list[bytes]) -> bytes:
    """RFC 9162's recursive MTH, for cross-checking the iterative root."""
    if not hs:
        return hashlib.sha256(b"").digest()
    if len(hs) == 1:
        return hs[0]
    k = 1
    while k * 2 < len(hs):
        k *= 2
    return merkle.node_hash(_reference_root(hs[:k]), _reference_root(hs[k:]))


def test_iterative_root_matches_recursive_definition() -> None:
    hs = [merkle.leaf_hash(bytes([i])) for i in range(70)]
    for n in range(71):
        assert merkle.root(hs[:n]) == _reference_root(hs[:n])


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_vectors(leaf: int, size: int, proof: list[str]) -> None:
    want = [h(p) for p in proof]
    assert merkle.inclusion_proof(leaf - 1, HASHES[:size]) == want
    root = h(ROOTS[size - 1])
    assert merkle.verify_inclusion(leaf - 1, size, HASHES[leaf - 1], want, root)
    # corrupted probes, as in the Go test suite
    bad = [
        (leaf - 2, size, HASHES[leaf - 1], want, root),
        (leaf, size, HASHES[leaf - 1], want, root),
        (leaf - 1, size * 2, HASHES[leaf - 1], want, root),
        (leaf - 1, size // 2, HASHES[leaf - 1], want, root),
        (leaf - 1, size, SOME, want, root),
        (leaf - 1, size, HASHES[leaf - 1], want, merkle.EMPTY_ROOT),
        (leaf - 1, size, HASHES[leaf - 1], [*want, root], root),
        (leaf - 1, size, HASHES[leaf - 1], [root, *want], root),
        (leaf - 1, size, HASHES[leaf - 1], want[:-1], root),
    ]
    for i in range(len(want)):
        flipped = list(want)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        bad.append((leaf - 1, size, HASHES[leaf - 1], flipped, root))
    for args in bad:
        assert not merkle.verify_inclusion(*args), args[:2]


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_consistency_vectors(size1: int, size2: int, proof: list[str]) -> None:
    want = [h(p) for p in proof]
    assert merkle.consistency_proof(size1, HASHES[:size2]) == want
    r1, r2 = h(ROOTS[size1 - 1]), h(ROOTS[size2 - 1])
    assert merkle.verify_consistency(size1, size2, want, r1, r2)
    bad = [
        (size1 - 1, size2, want, r1, r2), (size1 + 1, size2, want, r1, r2),
        (size1 ^ 2, size2, want, r1, r2), (size1, size2 * 2, want, r1, r2),
        (size1, size2 // 2, want, r1, r2), (size1, size2, want, SOME, r2),
        (size1, size2, want, r1, SOME), (size1, size2, want, r2, r1), (size1, size2, [], r1, r2),
        (size1, size2, [*want, b""], r1, r2), (size1, size2, [*want, r1], r1, r2),
        (size1, size2, [*want, r2], r1, r2), (size1, size2, [b"", *want], r1, r2),
        (size1, size2, [r1, *want], r1, r2), (size1, size2, [r2, *want], r1, r2),
        (size1, size2, [want[0], *want], r1, r2), (size1, size2, want[:-1], r1, r2),
    ]
    for i in range(len(want)):
        flipped = list(want)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        bad.append((size1, size2, flipped, r1, r2))
    for args in bad:
        if args[0] == args[1] == 0 or (args[0] == 0 and not args[2]):
            continue  # an empty first tree is consistent with anything
        assert not merkle.verify_consistency(*args), (args[0], args[1], len(args[2]))


def test_consistency_edge_cases() -> None:
    r1, r2 = b"\x01" * 32, b"\x02" * 32
    e = merkle.EMPTY_ROOT
    assert not merkle.verify_consistency(1, 1, [], r1, r2)
    assert merkle.verify_consistency(0, 0, [], r1, r1)
    assert merkle.verify_consistency(0, 1, [], r1, r2)
    assert merkle.verify_consistency(1, 1, [], r2, r2)
    assert not merkle.verify_consistency(1, 0, [], r1, r2)  # time travel
    assert not merkle.verify_consistency(2, 1, [], r1, r2)
    assert not merkle.verify_consistency(1, 2, [], r1, r2)  # empty proof
    assert not merkle.verify_consistency(0, 0, [e], e, e)  # roots match, proof not empty
    assert not merkle.verify_consistency(0, 1, [e], e, e)
    assert not merkle.verify_consistency(1, 1, [e], e, e)


def test_consistency_proof_must_consume_the_whole_second_tree() -> None:
    """The known pitfall: a proof for (2, 4) presented as one for (2, 8), with the
    4-leaf root claimed for the 8-leaf tree. Every hash in it checks out; only the
    final ``sn == 0`` test notices that the walk stopped halfway up the big tree."""
    proof = merkle.consistency_proof(2, HASHES[:4])
    assert merkle.verify_consistency(2, 4, proof, h(ROOTS[1]), h(ROOTS[3]))
    assert not merkle.verify_consistency(2, 8, proof, h(ROOTS[1]), h(ROOTS[3]))
    proof = merkle.consistency_proof(1, HASHES[:2])
    assert not merkle.verify_consistency(1, 8, proof, h(ROOTS[0]), h(ROOTS[1]))


def test_every_generated_proof_verifies() -> None:
    hs = [merkle.leaf_hash(b"leaf %d" % i) for i in range(33)]
    for n in range(1, 34):
        root = merkle.root(hs[:n])
        for i in range(n):
            assert merkle.verify_inclusion(i, n, hs[i], merkle.inclusion_proof(i, hs[:n]), root)
        for m in range(0, n + 1):
            p = merkle.consistency_proof(m, hs[:n])
            assert merkle.verify_consistency(m, n, p, merkle.root(hs[:m]), root), (m, n)
            if 0 < m < n:
                assert not merkle.verify_consistency(m, n, p, merkle.root([*hs[: m - 1], hs[m]]), root)


def test_row_commitments_of_a_column_equal_one_by_one() -> None:
    """`verify --released` computes row commitments a column at a time with compiled
    HMAC-SHA256; they must be exactly :func:`commitment` of each key: Unicode, NUL,
    empty and long keys, nulls, sliced and large_string columns, HMAC keys shorter and
    longer than SHA-256's 64-byte block."""
    import random

    import pyarrow as pa

    from datahygiene.audit.log import commitment, commitments_array

    rng = random.Random(3)
    keys = [None if rng.random() < 0.05 else
            "".join(rng.choice("abc\u00e9\U0001f600 \x00Z9") for _ in range(rng.randrange(0, 150)))
            for _ in range(2000)]
    for key in (b"k" * 32, bytes(range(64)), bytes(range(100))):
        want = [None if k is None else commitment(key, k) for k in keys]
        for column in (pa.array(keys, pa.string()), pa.array(keys, pa.large_string()),
                       pa.array(["pad", *keys]).slice(1)):
            assert commitments_array(key, column).to_pylist() == want
    assert commitments_array(b"k" * 32, pa.array([], pa.string())).to_pylist() == []
