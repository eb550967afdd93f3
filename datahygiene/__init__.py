"""datahygiene: find and exclude known CSAM from training manifests using partner
hash lists, and leave evidence that others can verify."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
