"""The web search page: an answer (the JSON ``GET /search`` returns) rendered as server-side HTML.

The page is a plain GET form, so it works without JavaScript and ``/?q=...`` is bookmarkable. Every value goes
through Jinja2's autoescaping; the schema.org ``Clip`` JSON-LD of each result is escaped for a ``<script>``
element.
"""

from __future__ import annotations

import json
from functools import lru_cache
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from clipsearch.ingest.clip_record import format_time, jump_link

#: What the page says when no clip answers a query.
NO_ANSWER = "No clip answers that."
#: The heading over results that an answer lists without being confident in them (``answered: false``).
NOT_CONFIDENT = "Closest, not confident"

# Only these schemes become links: a clip URL like ``javascript:...`` is data, not something to click.
_LINK_SCHEMES = {"http", "https"}
# Characters that could end a <script> element or open an HTML comment/entity inside JSON-LD.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("clipsearch.serve", "web"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_search_page(*, query: str | None, answer: dict | None, error: str | None, k: int) -> str:
    """The HTML of the search page.

    Args:
        query: the question as typed (shown in the search box); ``None`` before anything was asked.
        answer: the answer JSON dict as ``GET /search`` returns it, or ``None`` when there is none to show.
        error: a message to show instead of (or above) results, e.g. why a query was refused.
        k: the number of results asked for (kept in the form).

    Returns:
        A complete HTML document.
    """
    results = [_result_view(hit) for hit in (answer or {}).get("results") or []]
    answered = bool(answer and answer.get("answered") and results)
    return _environment().get_template("search.html").render(
        query=query or "",
        k=k,
        error=error,
        asked=answer is not None,
        answered=answered,
        results=results,
        no_answer=NO_ANSWER,
        not_confident=NOT_CONFIDENT,
    )


def _result_view(hit: dict) -> dict:
    """What the template shows of one result; labels and link computed when the answer lacks them."""
    start, end = float(hit["start"]), float(hit["end"])
    link = _web_link(hit["link"] if "link" in hit else jump_link(hit.get("url"), start, end))
    question = hit.get("question") or ""
    title = question or hit.get("video_title") or f"Clip {hit.get('id', '')}".strip()
    start_label = hit.get("start_label") or format_time(start)
    end_label = hit.get("end_label") or format_time(end)
    clip = {
        "@context": "https://schema.org",
        "@type": "Clip",
        "name": title,
        "startOffset": _seconds(start),
        "endOffset": _seconds(end),
    }
    if link:
        clip["url"] = link
    return {
        "title": title,
        "answer": _answer_parts(hit.get("answer") or "", hit.get("highlight")),
        "source": hit.get("source") or "",
        "video_title": hit.get("video_title") or "",
        "range": f"{start_label} \u2013 {end_label}",
        "start_label": start_label,
        "link": link,
        "json_ld": script_json(clip),
    }


def _web_link(link: str | None) -> str | None:
    """``link`` when it is an http(s) URL, else ``None``."""
    try:
        return link if link and urlsplit(link).scheme.lower() in _LINK_SCHEMES else None
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None


def _answer_parts(answer: str, highlight: dict | None) -> tuple[str, str, str]:
    """``(before, emphasised, after)``: the answer split around its highlight (all before if none)."""
    if highlight:
        start, end = highlight.get("char_start"), highlight.get("char_end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(answer):
            return answer[:start], answer[start:end], answer[end:]
    return answer, "", ""


def _seconds(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def script_json(value: object) -> Markup:
    """``value`` as JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u`` escapes."""
    return Markup(json.dumps(value, ensure_ascii=False).translate(_SCRIPT_SAFE))
