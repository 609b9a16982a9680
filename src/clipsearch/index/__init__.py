"""Index: building and opening versions of a self-describing index directory.

Owns the directory layout, manifest and atomic switch of ``current`` (``layout``), the build (``build``), one
verified version (``clip_index``), the vector-store seam (``vector_store``) and its FAISS backend (``faiss_store``,
``ann``), BM25 (``bm25``), clips read on demand (``clip_store``), the embedding cache (``embedding_cache``) and the
cutting of answers into sentences and passages at build time (``passages``).

May import: ``scoring``, ``encode``, ``ingest``, :mod:`clipsearch.errors`; never ``search``, ``serve`` or
``evaluate``.
"""
