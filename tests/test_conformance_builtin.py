import pytest

from datahygiene.plugins import discover
from datahygiene.testing import check_signal_type


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256", "url-md5", "url-sha1", "url-sha256"])
def test_builtin_signals_conform(name: str) -> None:
    check_signal_type(discover().get("signals", name).obj)
