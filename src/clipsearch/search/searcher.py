"""Searcher: a question in, the closest clips out, as an Answer with per-clip scores."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from clipsearch.encode.base import TextEncoder
from clipsearch.encode.models import resolve_model
from clipsearch.errors import ModelMismatch
from clipsearch.index.bm25 import LexicalMatch
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.vector_store import CLIP_FIELDS
from clipsearch.scoring.fusion import COMPONENTS
from clipsearch.search.answer import Answer, Hit
from clipsearch.search.threads import helper_pool

#: The fields with one vector per clip (the others are spans of answers), as the vector store names them.
VECTOR_FIELDS = CLIP_FIELDS
#: How much deeper the fields that find candidates read when a span field only ranks (``rank_only``): 1.4 (70 for
#: k up to 12) kept TutorialVQA dev Recall@10 over the 100k-clip synthetic corpus with passages rank-only (0.5438
#: against 0.5430 with passages searched; 50 deep without them: 0.5373) and raised it at 1M clips (0.4140 -> 0.4245
#: for 0.6 ms a search), issue 7.
RANK_ONLY_DEPTH = 1.4
#: The clip fields a search may be filtered on (exact match, any of the given values).
FILTER_FIELDS = ("source", "video_id")
#: What results may be grouped by (one result per group): ``video`` (clips without a video id stand alone).
GROUP_BY = ("video",)


class Searcher:
    """Answers questions from one index version with the encoder it was built with.

    Example usage::

        searcher = Searcher.open("index/example")
        answer = searcher.search("how do I fix a flat tyre?", k=3)
        answer.results[0].clip.start
    """

    def __init__(self, index: ClipIndex, encoder: TextEncoder, *, search_threads: int = 2):
        if encoder.fingerprint != index.manifest["model_fingerprint"]:
            raise ModelMismatch(
                f"model {encoder.name!r} (fingerprint {encoder.fingerprint[:12]}) is not the model the index "
                f"{index.root} was built with: {index.manifest['model']!r} "
                f"(fingerprint {index.manifest['model_fingerprint'][:12]})"
            )
        self.index = index
        self.encoder = encoder
        self.fusion = index.fusion
        self.calibration = index.calibration
        self._columns = index.clips.columns
        self._in_flight = 0  # searches running now, counted under _lock
        self._lock = threading.Lock()
        self.search_threads = search_threads
        self._helpers = helper_pool(search_threads - 1) if search_threads > 1 else None
        # The fields whose vectors find candidates, costliest search first (handed out in this order)
        searched = [name for name in (*index.store.span_fields, *VECTOR_FIELDS) if index.searchable(name)]
        self._searched_fields = sorted(searched, key=lambda name: -index.store.search_cost(name))
        # A field that only ranks (no index) finds no candidates: the others read deeper to make up for it
        self._depth = RANK_ONLY_DEPTH if any(not index.searchable(kind) for kind in index.store.span_fields) else 1.0

    @classmethod
    def open(
        cls,
        index_dir: str | Path,
        model: str | Path | None = None,
        *,
        query_encoder: str = "onnx",
        onnx_precision: str = "fp32",
        encoder_threads: int = 2,
        search_threads: int = 2,
        cache_dir: str | Path | None = None,
    ) -> Searcher:
        """Open the current version of ``index_dir`` with the model its manifest records.

        Args:
            model: optional; when given it must be the same model (by fingerprint) the index was built with.
            query_encoder: ``onnx`` (the model's verified ONNX export, made now if the cache lacks it; torch when
                it is refused) or ``torch``. See :func:`clipsearch.encode.factory.load_query_encoder`.
            onnx_precision, encoder_threads: the ONNX weights (``fp32``/``int8``) and threads per encoding.
            search_threads: threads a search uses when no other search is running (BM25 beside the encoding,
                then the vector searches and ranking shared out); 1: every search on its caller's thread.
            cache_dir: where the ONNX export is kept; default ``index_dir/cache``.

        Raises:
            IndexNotFound, IndexCorrupt, ModelNotFound, ModelMismatch.
        """
        from clipsearch.encode.factory import load_query_encoder

        index = ClipIndex.open(index_dir)
        ref = resolve_model(model) if model is not None else index.model_ref()
        encoder = load_query_encoder(
            ref, Path(cache_dir or Path(index_dir) / "cache"), backend=query_encoder, precision=onnx_precision,
            threads=encoder_threads,
        )
        return cls(index, encoder, search_threads=search_threads)

    def search(
        self,
        query: str,
        k: int = 10,
        filters: Mapping[str, Sequence[str]] | None = None,
        *,
        collapse: bool = True,
        group_by: str | None = None,
    ) -> Answer:
        """The ``k`` clips closest to ``query``, best first, among those matching ``filters``.

        Args:
            query: free text.
            k: how many clips at most.
            filters: ``{"source": [...], "video_id": [...]}``; a clip matches when each named field equals one of
                its values. Filters apply before the top k is cut.
            collapse: clips of the same video whose time ranges overlap do not crowd the results: the best one
                stands and lists the others' ids in ``overlapping``.
            group_by: ``"video"``: one result per video, its best clip (the video's other clips are left out).
        """
        _check_group_by(group_by)
        with self._lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            rows = self._rows_matching(filters)
            if self._nothing_to_rank(k, rows):
                return Answer(query, False, [])  # not even encoded
            # Alone, the question is encoded on all the encoder's threads while a helper thread scores it with
            # BM25, and its vector searches and ranking are shared with the helpers (latency); with other searches
            # in flight, all runs on this thread: their work fills the other cores, more threads would contend.
            lexical = None
            if alone and self._helpers is not None:
                lexical = self._helpers.submit(self.index.bm25.match, query, self._fetch(k), rows)
            vector = self.encoder.encode([query], threads=None if alone else 1)
            return self._search(query, vector, k, rows, collapse, group_by, lexical, where=filters)
        finally:
            with self._lock:
                self._in_flight -= 1

    def search_encoded(
        self,
        query: str,
        vector: np.ndarray,
        k: int = 10,
        filters: Mapping[str, Sequence[str]] | None = None,
        *,
        collapse: bool = True,
        group_by: str | None = None,
    ) -> Answer:
        """:meth:`search` with the query already encoded (``vector``: shape (1, dim)), e.g. in batches."""
        _check_group_by(group_by)
        return self._search(query, vector, k, self._rows_matching(filters), collapse, group_by, where=filters)

    def _search(
        self, query: str, vector: np.ndarray, k: int, rows: np.ndarray | None, collapse: bool, group_by: str | None,
        lexical: Future | None = None, *, where: Mapping[str, Sequence[str]] | None = None,
    ) -> Answer:
        if self._nothing_to_rank(k, rows):
            return Answer(query, False, [])
        candidates, components = self.components(query, vector, self._fetch(k), rows, lexical=lexical, where=where)
        fused = self.fusion.score_many(components)
        order = np.lexsort((candidates, -fused))  # best first, ties by clip row
        kept: list[tuple[int, list[str]]] = []  # (position in candidates, overlapping ids)
        for at in order:
            if len(kept) == k:
                break
            row = int(candidates[at])
            stand = self._overlapped_by(row, candidates, kept) if collapse else None
            if stand is not None:
                stand[1].append(self.index.clips[row].id)
            elif group_by is None or not self._same_video(row, candidates, kept):
                kept.append((int(at), []))
        hits = [self._hit(at, float(fused[at]), candidates, components, overlapping) for at, overlapping in kept]
        return self._calibrated(query, hits, candidates[[at for at, _ in kept]])

    def _fetch(self, k: int) -> int:
        """How deep a search for ``k`` clips reads each component's own top list."""
        return round(max(k * 4, 50) * self._depth)

    def _nothing_to_rank(self, k: int, rows: np.ndarray | None) -> bool:
        """No clip can be answered: none asked for, none left by the filters, or an empty index."""
        return k <= 0 or (rows is not None and len(rows) == 0) or not len(self.index.clips)

    def components(
        self, query: str, vector: np.ndarray, fetch: int, rows: np.ndarray | None = None, *,
        lexical: LexicalMatch | Future | None = None, where: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The clips worth ranking for a query and every ranking component of each, before fusion.

        Args:
            vector: the encoded query, shape (1, dim).
            fetch: how deep to read each component's own top list (the candidates are their union).
            rows: only these clip rows (a filter), or all.
            lexical: the query's BM25 match (or its future) when it was started already.
            where: the filters ``rows`` came from, for a vector store that filters inside its engine.

        Returns:
            (candidate clip rows, sorted; {component: array aligned with the rows, NaN = absent}).
        """
        vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        found: dict[str, np.ndarray] = {}

        def search(name: str) -> None:
            found[name] = self._found_by(name, vector, fetch, rows, where)

        def match() -> None:
            found["bm25"] = self.index.bm25.match(query, fetch, rows)

        # FAISS releases the GIL: alone, BM25 (Python) runs beside the vector searches
        self._share(([match] if lexical is None else []) + [partial(search, name) for name in self._searched_fields])
        if lexical is None:
            lexical = found.pop("bm25")
        elif isinstance(lexical, Future):
            lexical = lexical.result()
        candidates = np.unique(np.concatenate([*found.values(), lexical.top]).astype(np.int64))
        candidates = candidates[candidates >= 0]
        return candidates, self._components(candidates, vector[0], lexical)

    def _share(self, tasks: list[Callable[[], None]]) -> None:
        """Run ``tasks`` (costliest first): when this search is alone, on this thread and the helper threads, each
        taking the next task no thread has taken yet; with other searches in flight, all on this thread."""
        pending = iter(tasks)
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    task = next(pending, None)
                if task is None:
                    return
                task()

        helping = [] if self._helpers is None or self._in_flight > 1 or len(tasks) < 2 else [
            self._helpers.submit(work) for _ in range(min(self.search_threads - 1, len(tasks) - 1))
        ]
        errors = []
        try:
            work()
        finally:
            for future in helping:
                if not future.cancel():  # one still queued behind another search's is not waited for
                    errors.append(future.exception())
        for error in errors:
            if error is not None:
                raise error

    def _calibrated(self, query: str, hits: list[Hit], rows: np.ndarray) -> Answer:
        """Attach confidences and decide ``answered`` (see :mod:`clipsearch.scoring.calibration`); ``rows``: the
        hits' clip rows."""
        if self.calibration is None or not hits:
            return Answer(query, bool(hits), hits)
        coverage = self.index.bm25.coverage(query, rows).tolist() if self.calibration.uses_coverage else None
        confidences = self.calibration.confidences([h.score for h in hits], [h.scores for h in hits], coverage)
        hits = [replace(h, confidence=round(c, 4)) for h, c in zip(hits, confidences)]
        threshold = self.calibration.threshold
        return Answer(query, confidences[0] >= threshold, hits, round(threshold, 4))

    def _overlapped_by(self, row: int, candidates: np.ndarray, kept: list) -> tuple | None:
        """The kept result of the same video whose time range overlaps clip ``row``'s, if any."""
        columns = self._columns
        video = columns.video_id.codes[row]
        if not columns.video_id.values[video]:
            return None
        for entry in kept:
            other = int(candidates[entry[0]])
            if (columns.video_id.codes[other] == video and columns.start[row] < columns.end[other]
                    and columns.start[other] < columns.end[row]):
                return entry
        return None

    def _same_video(self, row: int, candidates: np.ndarray, kept: list) -> bool:
        """Whether a kept result is a clip of clip ``row``'s video (never for clips without a video id)."""
        codes = self._columns.video_id.codes
        video = codes[row]
        return bool(self._columns.video_id.values[video]) and any(
            codes[int(candidates[entry[0]])] == video for entry in kept
        )

    def _rows_matching(self, filters: Mapping[str, Sequence[str]] | None) -> np.ndarray | None:
        unknown = [name for name in filters or {} if name not in FILTER_FIELDS]
        if unknown:
            raise ValueError(f"unknown filter {unknown[0]!r}; filters are: {', '.join(FILTER_FIELDS)}")
        active = [(name, values) for name, values in (filters or {}).items() if values]
        if not active:
            return None  # every request names the filters, most with no values: no mask of every clip for them
        mask = np.ones(len(self.index.clips), dtype=bool)
        for name, values in active:
            mask &= getattr(self._columns, name).rows_equal_to_any(values)
        return np.flatnonzero(mask)

    def _found_by(self, name: str, vector: np.ndarray, fetch: int, rows: np.ndarray | None,
                  where: Mapping[str, Sequence[str]] | None = None) -> np.ndarray:
        """The clip rows the ``fetch`` (spans: 2 × fetch) nearest vectors of field ``name`` belong to."""
        where = where if rows is not None else None
        if name in VECTOR_FIELDS:
            return self.index.search(name, vector, fetch, rows, where)[1][0]
        table = self.index.store.span_table(name)
        positions = None if rows is None else np.flatnonzero(np.isin(table[:, 0], rows))
        ids = self.index.search(name, vector, fetch * 2, positions, where)[1][0]
        return table[ids[ids >= 0], 0]

    def _components(self, rows: np.ndarray, vector: np.ndarray, lexical: LexicalMatch) -> dict[str, np.ndarray]:
        """Every ranking component of the clips ``rows`` (NaN = absent), plus where the best sentence is."""
        components: dict[str, np.ndarray] = {}

        def clip_field(name: str) -> None:
            components[name] = self.index.store.cosines(name, rows, vector)

        def span_field(kind: str) -> None:
            components[kind], at = self.index.store.best_spans(kind, rows, vector)
            if kind == "sentence":
                components["_sentence_at"] = at

        self._share([*(partial(span_field, kind) for kind in self.index.store.span_fields),
                     *(partial(clip_field, name) for name in VECTOR_FIELDS)])
        bm25 = lexical.scores_of(rows)
        top = lexical.best if lexical.best is not None else float(bm25.max(initial=0.0))
        components["bm25"] = bm25 / top if top > 0 else np.zeros(len(rows), dtype=np.float32)
        return components

    def _hit(self, at: int, score: float, rows: np.ndarray, components: dict, overlapping: list[str]) -> Hit:
        row = int(rows[at])
        clip = self.index.clips[row]
        values = {name: float(components[name][at]) for name in COMPONENTS}
        scores = {name: None if np.isnan(v) else round(v, 6) for name, v in values.items()}
        highlight = None
        sentence = int(components["_sentence_at"][at])
        if sentence >= 0:
            _, start, end = (int(x) for x in self.index.store.span_table("sentence")[sentence])
            highlight = {"text": clip.answer[start:end], "char_start": start, "char_end": end}
        answer_side = max((v for k, v in scores.items() if k in ("answer", "sentence", "passage") and v is not None),
                          default=-1.0)
        matched = "question" if scores["question"] is not None and scores["question"] >= answer_side else "answer"
        return Hit(clip, round(score, 6), matched, scores, highlight, overlapping)


def _check_group_by(group_by: str | None) -> None:
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"unknown group_by {group_by!r}; results can be grouped by: {', '.join(GROUP_BY)}")
