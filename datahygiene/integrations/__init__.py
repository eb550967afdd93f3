"""Calling the hygiene step from tools curators already use.

* :mod:`datahygiene.integrations.hf` -- Hugging Face ``datasets`` (annotate, then split).
* The Ray engine lives in :mod:`datahygiene.engines.ray` (``datahygiene scan --engine ray``).
"""
