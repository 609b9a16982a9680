"""Search: a question in, an :class:`~clipsearch.search.answer.Answer` out.

Owns the :class:`~clipsearch.search.searcher.Searcher` (candidates from every field and BM25, their ranking
components, fusion, collapsing, abstention), the answer types (``answer``) and the threads a search runs on
(``threads``).

May import: ``index``, ``scoring``, ``encode``, ``ingest``, :mod:`clipsearch.errors`; never ``serve`` or ``evaluate``.
"""
