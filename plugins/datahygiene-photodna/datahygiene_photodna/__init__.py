"""Microsoft PhotoDNA Cloud Service as a datahygiene matching service (see README.md)."""

__version__ = "0.1.0"
