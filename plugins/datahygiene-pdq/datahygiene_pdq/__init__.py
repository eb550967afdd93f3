"""PDQ perceptual hashes for datahygiene: the ``pdq`` signal type (parse, compare,
exact range index) and hashing from image bytes with Meta's PDQ (``pdqhash``)."""

__version__ = "0.1.0"
