"""Conformance kit for plugin authors: prove a plugin honours its interface contract.

Use from a plugin's own tests::

    from datahygiene.testing import check_signal_type
    def test_conformance():
        check_signal_type(MySignal)

Each check raises AssertionError naming the rule broken.
"""

from datahygiene.testing.signals import check_signal_type

__all__ = ["check_signal_type"]
