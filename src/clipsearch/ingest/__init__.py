"""Ingest: clip records and the files they come from.

Owns the :class:`Clip` record and its times and links (``clip_record``), input text and JSON records with their line
numbers (``textfiles``), the clip-answer page (``clip_page``), timed transcripts (``transcripts``) and their
segmentation into clips (``segmentation``), and the one entry point :func:`clipsearch.ingest.corpus.read_clips`.

May import: :mod:`clipsearch.errors` only (no other stage).
"""
