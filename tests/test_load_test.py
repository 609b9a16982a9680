"""scripts/load_test.py (issue 19): a short run in the suite (2 clients for 5 s, a rebuild + reload every 1.2 s,
against a live server it starts), and its check of a response against the version that answered it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from load_test import mixed, tag  # noqa: E402


def test_a_short_load_test_while_rebuilding_has_no_failure_and_no_mixed_version(example_index, tmp_path):
    shutil.copytree(example_index / "cache", tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "load_test.py"), "--clients", "2", "--seconds", "5",
         "--rebuild-every", "1.2", "--work", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"requests (\d+), failures (\d+), mixed versions (\d+)", done.stdout)
    assert found and int(found[1]) > 50 and (found[2], found[3]) == ("0", "0"), done.stdout
    reloads = re.search(r"reloads (\d+), versions seen (\d+)", done.stdout)
    # at least one rebuild swapped in while the clients asked (how many depends on the machine's speed)
    assert int(reloads[1]) >= 1 and int(reloads[2]) >= 2, done.stdout


def test_a_response_is_whole_only_when_every_clip_comes_from_the_version_that_answered():
    generations = {"v1": 1, "v2": 2}
    body = {"results": [{"source": "Spoke & Chain" + tag(2)}, {"source": "Bean Lab" + tag(2)}]}

    assert mixed(body, "v2", generations) is None
    assert "answered with clips of 'Spoke & Chain [gen 2]'" in mixed(body, "v1", generations)
    body["results"][1]["source"] = "Bean Lab" + tag(1)
    assert "answered with clips of 'Bean Lab [gen 1]'" in mixed(body, "v2", generations)
    assert "no version this run built" in mixed(body, "v9", generations)
