"""The CyberTipline stub's XML and JSON are written by hand for speed; they must be the
very bytes ElementTree (built, ``ET.indent``-ed, serialised) and ``json.dumps(indent=2,
sort_keys=True)`` give for the same stub, odd characters included."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import datahygiene.reporters.cybertipline as ct

# text that XML must escape, cannot hold at all, or holds only as UTF-8
ODD = ["a&b", "<tag>", "x > y", 'quo"te', "it's", "tab\there", "new\nline", "cr\rhere",
       "nul\x00byte", "bell\x07", "\ud800lone", "\ufffe\uffff", "é ü 漢字 🙂", "]]>", "--",
       "&amp;", "", " ", "plain"]


def _by_elementtree(stub: dict[str, Any]) -> bytes:
    """The stub as the reporter wrote it with ElementTree up to 2026-12-08."""
    root = ET.Element("cyberTiplineStub")
    root.append(ET.Comment(" " + stub["_notice"] + " "))
    rep = ET.SubElement(root, "report")
    r = stub["report"]
    inc = ET.SubElement(rep, "incidentSummary")
    for k in ("incidentType", "incidentDateTime", "incidentDateTimeDescription"):
        ET.SubElement(inc, k).text = r["incidentSummary"][k]
    web = ET.SubElement(ET.SubElement(rep, "internetDetails"), "webPageIncident")
    for u in r["internetDetails"]["webPageIncident"]["url"]:
        ET.SubElement(web, "url").text = u
    ET.SubElement(web, "thirdPartyHostedContent").text = "true"
    ET.SubElement(web, "additionalInfo").text = r["internetDetails"]["webPageIncident"]["additionalInfo"]
    person = ET.SubElement(ET.SubElement(rep, "reporter"), "reportingPerson")
    for k in ct.REPORTER_FIELDS:
        person.append(ET.Comment(f" {ct.TO_COMPLETE}: {k} "))
        ET.SubElement(person, k)
    ET.SubElement(rep, "additionalInfo").text = r["additionalInfo"]
    files = ET.SubElement(root, "files")
    for f in stub["fileDetails"]:
        fd = ET.SubElement(files, "fileDetails")
        ET.SubElement(fd, "locationOfFile").text = f["locationOfFile"]
        ET.SubElement(fd, "fileViewedByEsp").text = "false"
        for h in f["originalFileHash"]:
            ET.SubElement(fd, "originalFileHash", hashType=h["hashType"]).text = h["value"]
        for a in f["additionalInfo"]:
            ET.SubElement(fd, "additionalInfo").text = a
    for el in root.iter():
        if el.text:
            el.text = ct._XML_ILLEGAL.sub("\ufffd", el.text)
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def _stub(rng: random.Random, files: int) -> dict[str, Any]:
    def text() -> str:
        return "".join(rng.choice(ODD) for _ in range(rng.randrange(4)))

    details = [{
        "locationOfFile": text() or ct.TO_COMPLETE,
        "fileViewedByEsp": False,
        "originalFileHash": [{"hashType": rng.choice(["MD5", "SHA1", 'odd"&<type>\n']), "value": text()}
                             for _ in range(rng.randrange(3))],
        "additionalInfo": [text() for _ in range(rng.randrange(3))],
    } for _ in range(files)]
    return {
        "_notice": text() + ct.NOTICE,
        "_toComplete": [text() for _ in range(rng.randrange(3))],
        "report": {
            "incidentSummary": {"incidentType": ct.INCIDENT_TYPE, "incidentDateTime": text(),
                                "incidentDateTimeDescription": text()},
            "internetDetails": {"webPageIncident": {
                "url": [text() for _ in range(rng.randrange(4))], "thirdPartyHostedContent": True,
                "additionalInfo": text()}},
            "reporter": {"reportingPerson": {k: "" for k in ct.REPORTER_FIELDS}},
            "additionalInfo": text(),
        },
        "fileDetails": details,
        "numbers": [0, -3, 2**70, 1.5, None, True, [], {}, [[]], {"b": {}, "a": [None]}],
    }


@pytest.mark.parametrize("seed", range(40))
def test_xml_and_json_are_the_libraries_bytes(seed: int) -> None:
    stub = _stub(random.Random(seed), files=seed % 4)  # none, one and several files
    assert ct._xml(stub) == _by_elementtree(stub)
    assert ct._json(stub) == json.dumps(stub, indent=2, sort_keys=True)


def test_xml_stays_parseable_and_keeps_what_xml_can_hold() -> None:
    stub = _stub(random.Random(7), files=2)
    stub["report"]["internetDetails"]["webPageIncident"]["url"] = ["https://example.invalid/a?b=1&c=<2>",
                                                                   "bad\x01url"]
    root = ET.fromstring(ct._xml(stub))
    urls = [u.text for u in root.iter("url")]
    assert urls == ["https://example.invalid/a?b=1&c=<2>", "bad\ufffdurl"]
