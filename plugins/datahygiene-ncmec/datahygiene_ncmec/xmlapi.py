"""Parsing the hash-sharing API's XML (entries pages and the status document).

An entries page holds ``<images>`` and ``<videos>``; each child is an ``<image>`` /
``<video>`` or a tombstone ``<deletedImage>`` / ``<deletedVideo>`` with ``<id>``,
``<member id="N">``, an optional ``<classification>`` and ``<fingerprints>`` whose
children are named by type (``md5``, ``sha1``, ``pdna``, ``pdq``, ...). ``<paging>``
``<next>`` is the path of the following page, empty on the last one.

Types are open strings: a type this code does not know is kept under its own
lower-cased tag name, so a later plugin can use it; ``pdna`` is spelled ``photodna``,
the name datahygiene uses for PhotoDNA hashes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from datahygiene.errors import ServiceError
from datahygiene.store.sync import EntryUpdate

TYPE_ALIASES = {"pdna": "photodna"}


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_document(body: bytes, what: str) -> ET.Element:
    """Parse a response body; refuse document type declarations (entity expansion)."""
    if b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        raise ServiceError(f"NCMEC {what}: response declares a document type; refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ServiceError(f"NCMEC {what}: response is not well-formed XML "
                           f"(line {exc.position[0]})") from None
    for el in root.iter():
        el.tag = _local(el.tag)
    return root


@dataclass
class EntriesPage:
    updates: list[EntryUpdate]
    next_path: str
    malformed: int = 0


def parse_entries(root: ET.Element, what: str = "entries") -> EntriesPage:
    """An entries page. Anything else is an error, never an empty page: a maintenance
    or proxy page answered with HTTP 200 (another root element, or no ``<paging>``) was
    read as a window without entries, and the checkpoint moved past that window for
    good. A record without an id, or of a kind this code does not know, is an error too:
    dropped, its entry would be missing from every scan without a word."""
    if root.tag != "queryResult" or root.find("paging") is None:
        raise ServiceError(f"NCMEC {what}: response is not an entries page (root <{root.tag}>"
                           f"{'' if root.tag != 'queryResult' else ' without <paging>'}); refused")
    updates: list[EntryUpdate] = []
    malformed = 0
    for group in ("images", "videos"):
        container = root.find(group)
        if container is None:
            continue
        for el in container:
            tag = el.tag.lower()
            deleted = tag.startswith("deleted")
            kind = tag[len("deleted"):] if deleted else tag
            id_el = el.find("id")
            if kind not in ("image", "video") or id_el is None or not (id_el.text or "").strip():
                malformed += 1
                continue
            fps: dict[str, str] = {}
            fp_el = el.find("fingerprints")
            for f in (fp_el if fp_el is not None else []):
                name = f.tag.lower()
                text = (f.text or "").strip()
                if text:
                    fps[TYPE_ALIASES.get(name, name)] = text
            cls_el = el.find("classification")
            member = el.find("member")
            category = (cls_el.text or "").strip() or None if cls_el is not None else None
            updates.append(EntryUpdate(
                entry_id=(id_el.text or "").strip(), deleted=deleted, fingerprints=fps,
                category=category, kind=kind,
                member_id=(member.get("id") if member is not None else None)))
    if malformed:
        raise ServiceError(f"NCMEC {what}: {malformed} record(s) without an id or of an unknown "
                           "kind; refused (the sync would leave their entries out)")
    nxt = root.find("paging/next")
    return EntriesPage(updates, (nxt.text or "").strip() if nxt is not None else "", malformed)


def parse_status(root: ET.Element) -> tuple[str, str]:
    member = root.find("member")
    if member is None:
        raise ServiceError("NCMEC status: response has no <member>")
    return member.get("id") or "", (member.text or "").strip()
