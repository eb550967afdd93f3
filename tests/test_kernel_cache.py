"""``make env`` compiles every kernel once (``python -m datahygiene.kernels``); a scan
that meets an argument type the warm-up missed compiles that kernel in the middle of
the scan, for half a second or more, on every new installation. Checked here in a
fresh process, as a user's first scan runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys
import numba
from datahygiene import digests, kernels, page_kernels
from datahygiene.config import ScanConfig
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import run_scan
from datahygiene.synth import SynthSpec, write_synthetic

data, out = sys.argv[1], sys.argv[2]
# rows whose md5 dictionary overflows into PLAIN pages, a text list, two threads; md5
# as binary; URL digests from a CSV list
for kind, binary in (("hex", False), ("binary", True)):
    write_synthetic(f"{data}/{kind}", SynthSpec(rows=120_000, files=2, list_size=20_000, planted=30,
                                               malformed=3, row_group_size=40_000, binary=binary,
                                               url_list=not binary))
kernels.warm_up()  # what `make env` did (loaded from numba's cache when it has run)


def misses():
    found = {}
    for mod in (kernels, page_kernels, digests):
        for name, obj in vars(mod).items():
            if isinstance(obj, numba.core.registry.CPUDispatcher):
                found[f"{mod.__name__}.{name}"] = {str(k) for k in obj.stats.cache_misses}
    return found


before = misses()
for i, (kind, lst) in enumerate((("hex", ListSpec(path=f"{data}/hex/lists/md5.txt", signal="md5")),
                                 ("binary", ListSpec(path=f"{data}/binary/lists/md5.txt", signal="md5")),
                                 ("hex", ListSpec(path=f"{data}/hex/lists/urls.csv")))):
    run_scan(ScanConfig(manifests=[f"{data}/{kind}/manifest"], out=f"{out}/{i}", threads=2, lists=[lst]))
after = misses()
print(json.dumps({k: sorted(v - before.get(k, set())) for k, v in after.items()
                  if v - before.get(k, set())}))
"""


def test_a_first_scan_compiles_no_kernel_the_warm_up_left_out(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    compiled = json.loads(done.stdout.strip().splitlines()[-1])
    assert compiled == {}, f"compiled during the scan (add them to kernels.warm_up): {compiled}"


def test_page_kernels_are_compiled_again_when_kernels_py_changes() -> None:
    """numba's cache keys page_kernels' kernels to page_kernels.py's content only, yet
    they inline kernels.py's functions: page_kernels.py names kernels.py's digest, so
    that a change there changes this file too and its cached kernels are not reused."""
    import hashlib

    from datahygiene import kernels, page_kernels

    actual = hashlib.sha256(Path(kernels.__file__).read_bytes()).hexdigest()
    assert actual == page_kernels.KERNELS_PY_SHA256, (
        "kernels.py changed: set KERNELS_PY_SHA256 in datahygiene/page_kernels.py to "
        f"{actual}, or the kernels there keep the old code from numba's cache")
