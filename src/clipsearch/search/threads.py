"""Threads of a search: the helper threads a search alone shares its work with, and one thread per search for a
server that runs many at once (torch, OpenMP and BLAS pools sized to match)."""

from __future__ import annotations

import threading
from functools import lru_cache


@lru_cache(maxsize=None)
def helper_pool(workers: int):
    """Threads that run parts of a search beside it (each with one OpenMP thread for FAISS); one pool per size for
    the process, shared by every Searcher (a server makes one per index version)."""
    from concurrent.futures import ThreadPoolExecutor

    import faiss

    return ThreadPoolExecutor(workers, thread_name_prefix="clipsearch-search",
                              initializer=lambda: faiss.omp_set_num_threads(1))


def one_thread_per_search() -> None:
    """Encode and rank each query on the thread that asks it, without torch's intra-op thread pool or the BLAS
    library's (numpy's) threads; the ONNX encoder takes its own setting, ``encoder_threads``.

    A server answers many short queries at once from a thread pool; intra-op threads only contend with each
    other there. Measured on a busy 2-core machine (issue 4): a search took ~700 ms through the HTTP thread
    pool with torch's default threads and ~50 ms with one. The BLAS threads (OpenBLAS, for the ranking's small
    matrix products) spin between products: on an idle 2-core machine, 10k clips, one BLAS thread took the
    server's CPU per request from 44 to 26-28 ms and 4-client throughput from 53 to 61-66 req/s, at the same
    1-client latency (issue 7).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")  # process-wide, kept after this call returns


_omp = threading.local()


def one_omp_thread_here() -> None:
    """Let FAISS use one OpenMP thread on the calling thread.

    ``faiss.omp_set_num_threads`` sets a per-thread value: called once at startup it leaves the HTTP thread
    pool's workers at one OpenMP thread per core each (issue 7), so each worker sets its own, once.
    """
    if not getattr(_omp, "pinned", False):
        import faiss

        faiss.omp_set_num_threads(1)
        _omp.pinned = True
