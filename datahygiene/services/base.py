"""The matching-service interface: a remote, authorised matcher (PhotoDNA Cloud...).

A service receives content it is licensed to see and says, per item, whether it
matched. Anything short of a definite answer -- a timeout, a refused image, a quota
error -- must come back as ``unverified`` with a reason: the core counts such rows
as not checked (fail closed), never as clean.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class ServiceResult:
    """One item's answer. ``status`` is ``match``, ``no-match`` or ``unverified``."""

    status: str
    refs: tuple[str, ...] = ()
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class MatchService(ABC):
    """Instances must pickle cheaply: open clients in :meth:`setup`, not ``__init__``.

    A service may count what it did in ``stats`` (a dict of integer counters: requests,
    retries...), shown by :meth:`describe` in run.json. An engine that runs the service
    in other processes (Ray workers) sends each worker's increments back and adds them
    to the instance the run describes, so run.json counts every request wherever it was
    sent from."""

    name: ClassVar[str]
    signal: ClassVar[str]  # the signal name matches are reported under

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Open clients, read credentials (from the environment only)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""

    def add_stats(self, delta: Mapping[str, int]) -> None:
        """Add counts made by a copy of this service in another process (a Ray worker).
        Override to take a lock if other threads update ``stats`` meanwhile."""
        stats = getattr(self, "stats", None)
        if stats is None:
            return
        for k, v in delta.items():
            stats[k] = stats.get(k, 0) + int(v)

    @abstractmethod
    def match(self, items: Sequence[bytes]) -> list[ServiceResult]:
        """Match each content item; return one result per item, in order."""

    def describe(self) -> dict[str, Any]:
        """What run.json records (never a credential)."""
        return {"name": self.name}
