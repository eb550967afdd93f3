"""Signal types: kinds of hashes, how they parse, compare and index."""

from datahygiene.signals.base import BytesHasher, Matches, Normalized, SignalIndex, SignalType

__all__ = ["BytesHasher", "Matches", "Normalized", "SignalIndex", "SignalType"]
