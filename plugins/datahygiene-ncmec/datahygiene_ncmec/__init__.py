"""NCMEC hash-sharing API as a datahygiene list source (see README.md)."""

__version__ = "0.1.0"
