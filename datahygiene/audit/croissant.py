"""A Croissant RAI fragment describing the hygiene step, for a dataset card.

A releasing institution merges it into its own Croissant metadata: it says what was
done (``rai:dataPreprocessingProtocol``), from what (``prov:wasDerivedFrom``, with
input digests) and what came out (``distribution``: the clean files and their
sha256). It carries counts and list identities only -- never a key, URL or value.
"""

from __future__ import annotations

from typing import Any

from datahygiene.manifest import input_digest

CONTEXT = {
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "prov": "http://www.w3.org/ns/prov#",
}


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def _input_object(i: dict[str, Any]) -> dict[str, Any]:
    """An input as a FileObject. Croissant's checksum properties are ``sha256`` and
    ``md5``: a BLAKE3 digest is given as a PROV value instead (run.json has it too)."""
    digest = input_digest(i)
    obj: dict[str, Any] = {"@type": "cr:FileObject", "name": i["path"]}
    if digest.startswith("sha256:"):
        obj["sha256"] = _hex(digest)
    else:
        obj["prov:value"] = digest
    obj["contentSize"] = f"{i['bytes']} B"
    return obj


def fragment(run: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    rows = summary["rows"]
    lists = run.get("lists", [])
    named = "; ".join(f"{hl['id']} ({hl['signal']}, {hl['entries']:,} entries, fingerprint "
                      f"{hl['fingerprint']})" for hl in lists) or "none"
    evidence = run.get("evidence", {})
    log = evidence.get("log")
    protocol = [
        f"Known child sexual abuse material was removed with datahygiene "
        f"{run['tool']['version']} (run {run['run_id']}): every one of the {rows['scanned']:,} rows "
        f"in {summary['files']} input file(s) was checked against partner hash lists without "
        f"viewing any content. Lists: {named}.",
        f"Result: {rows['excluded']:,} row(s) excluded on a match, {rows['unverified']:,} row(s) "
        f"that could not be checked held back as unverified, {rows['clean']:,} row(s) kept.",
    ]
    if log:
        protocol.append(
            f"Each excluded or unverified row is recorded as a keyed commitment in an append-only "
            f"Merkle log (RFC 9162) whose checkpoint ({log['origin']}, size {log['size']}) is "
            f"signed by the curator; `datahygiene verify` checks it.")
    else:
        protocol.append("No signed exclusion log was produced for this run.")
    out: dict[str, Any] = {
        "@context": CONTEXT,
        "rai:dataPreprocessingProtocol": protocol,
        "prov:wasDerivedFrom": [
            _input_object(i) for i in run.get("inputs", [])
        ],
        "distribution": [
            {"@type": "cr:FileObject", "@id": c["path"], "name": c["path"], "contentUrl": c["path"],
             "encodingFormat": "application/x-parquet", "sha256": _hex(c["sha256"])}
            for c in run.get("outputs", {}).get("clean", [])
        ],
    }
    return out
