"""The ``ncmec`` list source: incremental sync of the NCMEC hash-sharing API.

``datahygiene lists sync NAME --source ncmec --config ncmec.toml`` calls
:meth:`NCMECSource.sync`, which walks time windows from the checkpoint to now and
yields one :class:`~datahygiene.store.sync.SyncPage` per fully read window. Why whole
windows: the API does not return entries in time order, so the only safe place to
resume is the end of a window whose every page was read. A window's pages are
buffered and delivered together; if a paging link goes stale mid-window the window
is read again from its first page (replace-by-id makes that harmless).

Scans do not talk to NCMEC: they read the synced snapshot from the local store
(``--list store:NAME``), which is also what :meth:`NCMECSource.load` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from datahygiene.config import resolve_secret
from datahygiene.errors import ConfigError, ServiceError
from datahygiene.lists.model import HashList
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import Registry
from datahygiene.sources.base import SyncingSource
from datahygiene.store.source import StoreListSource
from datahygiene.store.sync import EntryUpdate, SyncPage
from datahygiene_ncmec.client import NCMECClient, RetryPolicy, StaleLink
from datahygiene_ncmec.xmlapi import parse_document, parse_entries

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
KNOWN_KEYS = {"base_url", "username", "password", "start", "until", "window_days", "window_hours",
              "timeout_s", "max_retries", "backoff_s", "max_window_restarts"}
MAX_PAGES_PER_WINDOW = 100_000


def parse_time(value: Any, key: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.strptime(str(value), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"ncmec sync config: {key} must be a UTC time like 2024-01-31T00:00:00Z") from None


def fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime(TIME_FORMAT)


class NCMECSource(SyncingSource):
    name = "ncmec"
    partner = "ncmec"

    def load(self, spec: ListSpec, registry: Registry) -> list[HashList]:
        """A synced NCMEC list is read from the local store, like any stored list."""
        return StoreListSource().load(spec, registry)

    def client(self, config: dict[str, Any]) -> NCMECClient:
        unknown = sorted(set(config) - KNOWN_KEYS)
        if unknown:
            raise ConfigError(f"ncmec sync config: unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(KNOWN_KEYS))}")
        if "base_url" not in config:
            raise ConfigError("ncmec sync config: base_url is required (the environment your agreement "
                              "covers, e.g. https://exttest.cybertip.org/hashsharing for testing)")
        user = resolve_secret(config.get("username"), "ncmec sync config: username")
        password = resolve_secret(config.get("password"), "ncmec sync config: password")
        retry = RetryPolicy(max_retries=int(config.get("max_retries", 4)),
                            backoff_s=float(config.get("backoff_s", 1.0)))
        return NCMECClient(str(config["base_url"]), user, password,
                           timeout_s=float(config.get("timeout_s", 60.0)), retry=retry)

    def sync(self, config: dict[str, Any], checkpoint: dict[str, Any] | None) -> Iterator[SyncPage]:
        client = self.client(config)
        start = parse_time(checkpoint["end"], "checkpoint") if checkpoint else \
            parse_time(config.get("start", "2000-01-01T00:00:00Z"), "start")
        until = parse_time(config["until"], "until") if "until" in config else \
            datetime.now(UTC).replace(microsecond=0)
        hours = float(config.get("window_hours", 24 * float(config.get("window_days", 30))))
        if hours <= 0:
            raise ConfigError("ncmec sync config: window length must be positive")
        step = timedelta(hours=hours)
        windows: list[tuple[datetime, datetime]] = []
        t = start
        while t < until:
            windows.append((t, min(t + step, until)))
            t = windows[-1][1]
        restarts_allowed = int(config.get("max_window_restarts", 3))
        for i, (a, b) in enumerate(windows, 1):
            updates = self._read_window(client, a, b, restarts_allowed)
            yield SyncPage(updates, checkpoint={"end": fmt(b), "retrieved_at": fmt(b)},
                           progress=f"window {i}/{len(windows)} ({fmt(a)} to {fmt(b)})")

    def _read_window(self, client: NCMECClient, a: datetime, b: datetime,
                     restarts_allowed: int) -> list[EntryUpdate]:
        what = f"entries {fmt(a)} to {fmt(b)}"
        for _restart in range(restarts_allowed + 1):
            updates: list[EntryUpdate] = []
            url, is_next = client.entries_url(fmt(a), fmt(b)), False
            try:
                for _page in range(MAX_PAGES_PER_WINDOW):
                    body = client.get(url, what, is_next=is_next)
                    page = parse_entries(parse_document(body, what), what)
                    updates.extend(page.updates)
                    if not page.next_path:
                        return updates
                    url, is_next = client.next_url(page.next_path), True
                raise ServiceError(f"NCMEC {what}: more than {MAX_PAGES_PER_WINDOW} pages; refused")
            except StaleLink:
                continue  # the paging link expired: read the whole window again
        raise ServiceError(f"NCMEC {what}: paging links kept going stale "
                           f"({restarts_allowed + 1} attempts); try a smaller window_hours")
