"""Partner hash lists: the loaded model and the file formats they come in."""

from datahygiene.lists.model import HashList, ListIdentity

__all__ = ["HashList", "ListIdentity"]
