"""Serve: the HTTP service over a Searcher.

Owns the FastAPI app and its error handlers (``app``), the routes (``routes``), the request and response models
(``schemas``), the ASGI middleware (``middleware``), the served index and its hot reload (``service``), the
Prometheus metrics (``prometheus``) and the server-rendered search page (``search_page`` and ``web/``).

May import: ``search`` and the stages below it, :mod:`clipsearch.settings`, :mod:`clipsearch.errors`; never
``evaluate`` or ``cli``.
"""
