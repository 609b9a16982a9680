"""What checking an index against its manifest costs at load (issue 19): ``ClipIndex.open`` with the fast checks
every load makes (sizes, the hashes of the files read whole, shapes) against the full verification of ``clipsearch
index verify`` (every byte hashed, what every load did before issue 19), on the scale indexes.

Each figure is taken in a fresh process (imports left out), with the version's files first dropped from the page
cache (``posix_fadvise(DONTNEED)`` on those files only: the disk read included, "cold") and then again with them
cached ("warm").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clipsearch.encode.torch_encoder import Encoder
from clipsearch.index.integrity import mapped_bytes
from clipsearch.index.layout import current_version_path, read_manifest
from perf.scale import scale_index

#: Times ClipIndex.open (or the hashing alone) in a fresh process; argv: index dir, level, what, cold (0/1).
TIMED_CODE = """
import json, os, sys, time
from pathlib import Path
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.integrity import check_files
from clipsearch.index.layout import current_version_path, read_manifest
root, level, what, cold = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"
path = current_version_path(root)
if cold:
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
began = time.perf_counter()
if what == "open":
    ClipIndex.open(root, level)
else:
    check_files(path, read_manifest(path), level)
print(json.dumps(time.perf_counter() - began))
"""


def verify_costs(sizes: list[int], encoder: Encoder, tvqa: Path, work: Path) -> list[dict]:
    """Per size: bytes of the version (all, memory-mapped), and seconds of the fast and full checks, cold and warm."""
    rows = []
    for size in sizes:
        out = scale_index(size, encoder, tvqa, work)
        manifest = read_manifest(current_version_path(out))
        total = sum(entry["bytes"] for entry in manifest["files"].values())
        row = {"clips": size, "files": len(manifest["files"]), "bytes": total, "mapped_bytes": mapped_bytes(manifest)}
        for what in ("open", "hash"):
            for level in ("fast", "full"):
                for cold in (True, False):
                    key = f"{what}_{level}_{'cold' if cold else 'warm'}_s"
                    done = subprocess.run([sys.executable, "-c", TIMED_CODE, str(out), level, what, str(int(cold))],
                                          check=True, capture_output=True, text=True)
                    row[key] = json.loads(done.stdout.strip().splitlines()[-1])
                    print(f"  {size} clips: {key} {row[key]:.2f}", flush=True)
        rows.append(row)
    return rows

