"""An independent check of Scoreboard's verifiable log, written from RFC 9162 alone with
Python's standard library (no code shared with the service): reads every event of the log
over HTTP, recomputes each leaf from its entry and every tree head from the leaves, and checks
every inclusion proof of every leaf of every tree size, and every consistency proof between
every two sizes, that the service hands out.

Usage: python3 rfc9162_verify.py <base URL> [--random N]. With --random, only N inclusion and N
consistency proofs chosen at random (for large logs). Prints a summary; exits non-zero on any
failure."""

import base64
import hashlib
import json
import random
import sys
import urllib.error
import urllib.request


def get(base, path):
    with urllib.request.urlopen(base + path) as response:
        return json.load(response)


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    """RFC 9162 §2.1.1."""
    if len(leaves) == 0:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, proof, first_hash, second_hash):
    """RFC 9162 §2.1.4.2."""
    if first == second:
        return not proof and first_hash == second_hash
    if first > second or first == 0:
        return False
    path = ([first_hash] if first & (first - 1) == 0 else []) + proof
    if not path:
        return False
    fn, sn = first - 1, second - 1
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
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def main(base, samples=None):
    events, after = [], 0
    while True:
        page = get(base, f"/v1/events?after={after}&limit=1000")
        if not page["events"]:
            break
        events += page["events"]
        after = page["next_after"]
    leaves = []
    for position, event in enumerate(events, start=1):
        assert event["position"] == position, f"position {position} holds {event['position']}"
        entry = event["entry"].encode("utf-8")
        parsed = json.loads(entry)
        assert parsed["position"] == position and parsed["type"] == event["type"], f"entry of {position}"
        assert parsed["data"] == event["data"], f"the entry of {position} is not its event"
        leaf = leaf_hash(entry)
        assert event["leaf_hash"] == leaf.hex(), f"leaf of {position}"
        leaves.append(leaf)
    n = len(leaves)
    roots = {}

    def root(size):
        if size not in roots:
            roots[size] = mth(leaves[:size])
        return roots[size]

    inclusions = consistencies = 0
    if samples is None:
        pairs = [(size, index) for size in range(1, n + 1) for index in range(size)]
        spans = [(first, size) for size in range(1, n + 1) for first in range(1, size + 1)]
    else:
        rng = random.Random(9162)
        pairs = [(n, rng.randrange(n)) for _ in range(samples)]
        spans = [(rng.randint(1, n), n) for _ in range(samples)]
    for size, index in pairs:
        proof = get(base, f"/v1/audit/proof/inclusion?position={index + 1}&tree_size={size}")
        assert (proof["leaf_index"], proof["tree_size"]) == (index, size)
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        assert verify_inclusion(index, size, leaves[index], hashes, root(size)), f"leaf {index} of {size}"
        if hashes:
            bent = [bytes([hashes[0][0] ^ 1]) + hashes[0][1:]] + hashes[1:]
            assert not verify_inclusion(index, size, leaves[index], bent, root(size))
        inclusions += 1
    for first, size in spans:
        proof = get(base, f"/v1/audit/proof/consistency?from={first}&to={size}")
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        assert verify_consistency(first, size, hashes, root(first), root(size)), f"{first} to {size}"
        if first < size:
            assert not verify_consistency(first, size, hashes, root(size), root(first))
        consistencies += 1
    checkpoints = get(base, "/v1/audit/checkpoints?limit=1000")
    assert checkpoints, "no checkpoint was signed"
    for checkpoint in checkpoints:
        size = checkpoint["tree_size"]
        assert checkpoint["root_hash"] == root(size).hex(), f"the checkpoint of {size} signs another tree"
        body = checkpoint["note"].split("\n")
        assert body[1] == str(size) and base64.b64decode(body[2]) == root(size), f"note of {size}"
    try:
        get(base, f"/v1/audit/proof/inclusion?position=1&tree_size={n + 1}")
        raise AssertionError("a tree larger than the log was proven")
    except urllib.error.HTTPError as error:
        assert error.code == 404, error.code
    print(
        f"{n} leaves, root {root(n).hex()}: {inclusions} inclusion and {consistencies} consistency proofs "
        f"and {len(checkpoints)} checkpoints' roots verified"
    )


if __name__ == "__main__":
    samples = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--random" else None
    main(sys.argv[1].rstrip("/"), samples)
