"""The built-in ``file`` list source (text, CSV/TSV, JSON Lines, parquet)."""

from __future__ import annotations

from datahygiene.lists.files import load_list_file
from datahygiene.lists.model import HashList
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import Registry
from datahygiene.sources.base import ListSource


class FileListSource(ListSource):
    name = "file"

    def load(self, spec: ListSpec, registry: Registry) -> list[HashList]:
        return load_list_file(spec, registry)
