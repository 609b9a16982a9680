"""A ``milvus-lite server`` on loopback: the development stand-in for a Milvus standalone server (the same
``pymilvus`` client, the same ``http://host:port`` URI), used by the ``milvus`` stage and by the tests of a
service whose Milvus goes away and comes back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from perf.http_load import free_port

MILVUS_LITE = Path(sys.executable).with_name("milvus-lite")


class LocalMilvus:
    """``milvus-lite server`` with its data in ``data``, on ``port`` (default: a free one), up when constructed.

    Raises:
        RuntimeError: the server did not answer within ``start_timeout`` seconds, or exited.
    """

    def __init__(self, data: Path, port: int | None = None, start_timeout: float = 120):
        from pymilvus import MilvusClient

        self.data, self.port = Path(data), port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(MILVUS_LITE), "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                MilvusClient(uri=self.uri, timeout=2).list_collections()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("milvus-lite server did not start") from None
                time.sleep(0.3)

    def stop(self) -> None:
        """Terminate the server (nothing when it has already exited)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)
