"""Conformance kit for plugin authors: prove a plugin honours its interface contract.

Use from a plugin's own tests, against synthetic fixtures only::

    from datahygiene.testing import check_signal_type, check_list_source
    def test_conformance():
        check_signal_type(MySignal)
        check_list_source(MySource, ListSpec(path=str(FIXTURE), source="my-source"))

One check per interface (docs/plugins.md, "Conformance kit"):

* :func:`check_signal_type` -- ``datahygiene.signals``
* :func:`check_list_source` (and :func:`check_sync_resumes` for a syncing source) --
  ``datahygiene.sources``
* :func:`check_match_service` and :func:`check_fails_closed` (with the
  :func:`unreachable_backend` and :func:`failing_backend` helpers) --
  ``datahygiene.services``
* :func:`check_reporter` (with :func:`make_reporter_inputs`) -- ``datahygiene.reporters``

Each check raises AssertionError naming the rule broken, never quoting a list value,
an item or a credential. The checks raise explicitly (no ``assert`` statements), so
they also hold under ``python -O``.
"""

from datahygiene.testing.reporters import ReporterInputs, check_reporter, make_reporter_inputs
from datahygiene.testing.services import (
    check_fails_closed,
    check_match_service,
    failing_backend,
    unreachable_backend,
)
from datahygiene.testing.signals import check_signal_type
from datahygiene.testing.sources import check_list_source, check_sync_resumes

__all__ = [
    "ReporterInputs",
    "check_fails_closed",
    "check_list_source",
    "check_match_service",
    "check_reporter",
    "check_signal_type",
    "check_sync_resumes",
    "failing_backend",
    "make_reporter_inputs",
    "unreachable_backend",
]
