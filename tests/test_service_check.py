"""The scan step's check for a matching service (datahygiene/services/check.py): what a
service's answers become in the exclusions. The service here is a plugin object
answering from a table, as a plugin's ``match`` returns; the first-party PhotoDNA
plugin tests the same check through its loopback server."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from datahygiene.services.base import MatchService, ServiceResult
from datahygiene.services.check import ServiceCheck


class Table(MatchService):
    name = "table-service"
    signal = "table"

    def __init__(self, answers: dict[bytes, ServiceResult]) -> None:
        self.answers = answers

    def match(self, items: Sequence[bytes]) -> list[ServiceResult]:
        return [self.answers.get(bytes(i), ServiceResult("no-match")) for i in items]


def _outcome(answers: dict[bytes, ServiceResult], images: list[bytes | None]) -> list[tuple[int, str, str]]:
    check = ServiceCheck(Table(answers), "image")
    out = check.run(pa.table({"image": pa.array(images, pa.binary())}))
    return list(zip(out.match_rows.tolist(), out.match_list.to_pylist(), out.match_ref.to_pylist(),
                    strict=True))


def test_every_ref_of_a_match_is_kept_under_its_list() -> None:
    """A service naming lists for fewer refs than it gives: every ref is a match, the
    unnamed ones under the service's own name (none is dropped); lists beyond the refs
    name nothing."""
    answers = {
        b"one": ServiceResult("match", refs=("r1", "r2", "r3"), details={"lists": ["partner/A"]}),
        b"two": ServiceResult("match", refs=("r4",), details={"lists": ["partner/B", "partner/C"]}),
        b"three": ServiceResult("match", refs=("r5", "r6")),
        b"four": ServiceResult("match"),
    }
    got = _outcome(answers, [b"zero", b"one", b"two", b"three", b"four"])
    assert got == [(1, "partner/A", "r1"), (1, "table-service", "r2"), (1, "table-service", "r3"),
                   (2, "partner/B", "r4"),
                   (3, "table-service", "r5"), (3, "table-service", "r6"),
                   (4, "table-service", "")]
