"""The list-source interface: where partner lists come from.

A source turns a location (a file, a partner API) into loaded :class:`HashList`
objects. Sources that talk to a service should keep their client in ``setup()``-style
lazy state and never log or raise with an entry value or a credential in the text.
Sources that can update incrementally also implement :class:`SyncingSource`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from datahygiene.lists.model import HashList
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import Registry


class ListSource(ABC):
    """Loads lists named by a :class:`ListSpec` whose ``source`` is this plugin's name."""

    name: ClassVar[str]

    @abstractmethod
    def load(self, spec: ListSpec, registry: Registry) -> list[HashList]:
        """Return one HashList per signal type the list holds."""


class SyncingSource(ListSource):
    """A source that keeps a local copy up to date from a partner service.

    ``sync`` must be restartable: it receives the last committed checkpoint (an opaque
    JSON-able mapping, or None for a first sync) and returns the new one only once the
    work it covers is complete, so an interrupted sync resumes without loss or
    duplication."""

    @abstractmethod
    def sync(self, config: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        """Fetch changes since ``checkpoint``; see the plugin's docs for the result type."""
