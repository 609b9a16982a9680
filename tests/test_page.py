"""The web search page rendered from answer dicts, parsed back with the standard library's HTML parser."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from importlib.resources import files

import pytest

from clipsearch.serve.search_page import NO_ANSWER, NOT_CONFIDENT, render_search_page

VOID = {"meta", "input", "br", "img", "link", "hr"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None]):
        self.tag, self.attrs, self.children, self.parts = tag, attrs, [], []

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        found = []
        for child in self.children:
            if child.tag == tag and all(child.attrs.get(k.rstrip("_")) == v for k, v in attrs.items()):
                found.append(child)
            found.extend(child.find_all(tag, **attrs))
        return found

    def find(self, tag: str, **attrs: str) -> Element:
        (element,) = self.find_all(tag, **attrs)
        return element


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        self.stack[-1].parts.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


def parse(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


def squash(text: str) -> str:
    return " ".join(text.split())


def hit(**fields) -> dict:
    """A result as GET /search returns it (the example corpus's bike-04 clip, labels and link included)."""
    answer = "Wipe the chain first. Put one drop of lube on each roller. Wipe off the excess."
    return {
        "id": "bike-04",
        "question": "How often should I lubricate my chain?",
        "answer": answer,
        "source": "Spoke & Chain",
        "start": 240.0,
        "end": 300.0,
        "start_label": "04:00",
        "end_label": "05:00",
        "duration": 60.0,
        "link": "https://www.youtube.com/watch?v=kQ7vR2mZt4X&t=240s",
        "url": "https://www.youtube.com/watch?v=kQ7vR2mZt4X",
        "video_id": "kQ7vR2mZt4X",
        "video_title": "The Ten-Minute Bike Check",
        "score": 0.57,
        "matched": "answer",
        "scores": {"question": 0.41, "answer": 0.52},
        "highlight": {"text": "Put one drop of lube on each roller.", "char_start": 22, "char_end": 58},
        **fields,
    }


def page(*results: dict, answered: bool = True, query: str = "my chain squeaks") -> Element:
    answer = {"query": query, "answered": answered, "results": list(results)}
    return parse(render_search_page(query=query, answer=answer, error=None, k=3))


def articles(doc: Element) -> list[Element]:
    return doc.find_all("article")


def json_ld(article: Element) -> dict:
    return json.loads(article.find("script", type="application/ld+json").text)


def test_a_result_shows_question_answer_source_time_range_and_link():
    (article,) = articles(page(hit()))

    assert article.find("h3").text == "How often should I lubricate my chain?"
    assert "Wipe the chain first." in article.find("p", class_="text").text
    assert article.find("span", class_="source").text == "Spoke & Chain"
    assert article.find("span", class_="range").text == "04:00 \u2013 05:00"
    link = article.find("a")
    assert link.attrs["href"] == "https://www.youtube.com/watch?v=kQ7vR2mZt4X&t=240s"
    assert squash(link.text) == "Watch from 04:00: How often should I lubricate my chain?"


def test_results_keep_their_order_and_the_status_counts_them():
    doc = page(hit(), hit(id="bike-05", question="Second?"), query="chain")

    assert [a.find("h3").text for a in articles(doc)] == ["How often should I lubricate my chain?", "Second?"]
    status = doc.find("p", role="status")
    assert status.attrs["aria-live"] == "polite"
    assert squash(status.text) == "2 clips for \u201cchain\u201d"


def test_the_highlight_sentence_is_marked_and_each_part_escaped():
    answer = "Use <b>oil</b>. Put one drop & wipe \"it\". Done <i>."
    start = answer.index("Put")
    end = answer.index(" Done")
    highlight = {"text": answer[start:end], "char_start": start, "char_end": end}
    (article,) = articles(page(hit(answer=answer, highlight=highlight)))

    text = article.find("p", class_="text")
    assert text.find("mark").text == "Put one drop & wipe \"it\"."
    assert text.text == answer
    assert text.find_all("b") == [] and text.find_all("i") == []


@pytest.mark.parametrize(
    "highlight",
    [None, {"text": "x", "char_start": 5, "char_end": 5000}, {"text": "x", "char_start": -1, "char_end": 3}],
)
def test_no_or_out_of_range_highlight_shows_the_answer_unmarked(highlight):
    (article,) = articles(page(hit(highlight=highlight)))

    text = article.find("p", class_="text")
    assert text.find_all("mark") == []
    assert text.text == hit()["answer"]


def test_every_value_is_escaped():
    evil = "</h3><script>alert(\"x\")</script>'\"&amp;"
    result = hit(
        question=evil + "?",
        answer=evil,
        source=evil,
        video_title=evil,
        start_label=evil,
        link="https://example.com/v?a=1&b=\"><script>alert(1)</script>",
        highlight={"text": "", "char_start": 0, "char_end": 5},
    )
    answer = {"query": evil, "answered": True, "results": [result]}
    html = render_search_page(query=evil, answer=answer, error=evil, k=3)

    assert "<script>alert" not in html
    doc = parse(html)
    assert [s.attrs.get("type") for s in doc.find_all("script")] == ["application/ld+json"]
    assert doc.find("input", name="q").attrs["value"] == evil
    assert doc.find("p", role="alert").text == evil
    (article,) = articles(doc)
    assert article.find("h3").text == evil + "?"
    assert article.find("span", class_="source").text == evil
    assert article.find("span", class_="video").text == evil
    assert article.find("p", class_="text").text == evil
    assert article.find("a").attrs["href"] == result["link"]
    assert json_ld(article)["name"] == evil + "?"


def test_json_ld_is_a_schema_org_clip_safe_inside_script():
    question = "Is </script><!-- & > safe?"
    (article,) = articles(page(hit(question=question, end=300.5)))

    raw = article.find("script", type="application/ld+json").text
    assert not set("<>&") & set(raw)
    assert json.loads(raw) == {
        "@context": "https://schema.org",
        "@type": "Clip",
        "name": question,
        "startOffset": 240,
        "endOffset": 300.5,
        "url": "https://www.youtube.com/watch?v=kQ7vR2mZt4X&t=240s",
    }


@pytest.mark.parametrize(
    "url, href",
    [
        ("https://www.youtube.com/watch?v=abc", "https://www.youtube.com/watch?v=abc&t=101s"),
        ("https://cdn.example.com/talk.mp4", "https://cdn.example.com/talk.mp4#t=101,129.5"),
    ],
)
def test_labels_and_link_are_computed_when_the_answer_lacks_them(url, href):
    result = hit(start=101, end=129.5, url=url)
    for name in ("start_label", "end_label", "link"):
        del result[name]

    (article,) = articles(page(result))

    assert article.find("span", class_="range").text == "01:41 \u2013 02:09"
    assert article.find("a").attrs["href"] == href
    assert json_ld(article)["url"] == href


def test_hour_long_videos_get_hour_labels():
    result = hit(start=3725, end=3790)
    del result["start_label"], result["end_label"]

    (article,) = articles(page(result))

    assert article.find("span", class_="range").text == "1:02:05 \u2013 1:03:10"


@pytest.mark.parametrize("link", [None, "javascript:alert(1)", "data:text/html,<b>x</b>", "http://[bad/v"])
def test_no_link_without_a_web_url(link):
    (article,) = articles(page(hit(link=link)))

    assert article.find_all("a") == []
    assert "url" not in json_ld(article)


def test_a_clip_without_a_question_is_titled_by_its_video():
    (article,) = articles(page(hit(question="")))

    assert article.find("h3").text == "The Ten-Minute Bike Check"
    assert json_ld(article)["name"] == "The Ten-Minute Bike Check"


def test_nothing_answers_says_so():
    doc = page(answered=False, query="how do I bake sourdough bread")

    assert squash(doc.find("p", role="status").text) == NO_ANSWER
    assert articles(doc) == []
    assert doc.find_all("h2") == []


def test_unconfident_results_are_listed_as_closest_not_confident():
    doc = page(hit(), answered=False)

    assert squash(doc.find("p", role="status").text) == NO_ANSWER
    assert [h.text for h in doc.find_all("h2")] == [NOT_CONFIDENT]
    assert len(articles(doc)) == 1


def test_an_error_is_shown_with_the_query_kept():
    html = render_search_page(query="x" * 600, answer=None, error="q: at most 512 characters", k=7)
    doc = parse(html)

    assert doc.find("p", role="alert").text == "q: at most 512 characters"
    assert doc.find("input", name="q").attrs["value"] == "x" * 600
    assert doc.find("input", name="k").attrs["value"] == "7"
    assert squash(doc.find("p", role="status").text) == ""
    assert NO_ANSWER not in html


def test_the_empty_page_is_an_accessible_get_form():
    doc = parse(render_search_page(query=None, answer=None, error=None, k=10))

    assert doc.find("meta", name="viewport").attrs["content"] == "width=device-width, initial-scale=1"
    assert doc.find("html").attrs["lang"] == "en"
    form = doc.find("form")
    assert (form.attrs["role"], form.attrs["method"], form.attrs["action"]) == ("search", "get", "/")
    for name, label in (("q", "Question"), ("k", "Results")):
        field = form.find("input", name=name)
        assert form.find("label", for_=field.attrs["id"]).text == label
    assert form.find("input", name="q").attrs["value"] == ""
    assert "autofocus" in form.find("input", name="q").attrs
    assert form.find("input", name="k").attrs["value"] == "10"
    assert len(doc.find_all("main")) == len(doc.find_all("header")) == len(doc.find_all("footer")) == 1
    assert doc.find_all("p", role="alert") == [] and articles(doc) == []
    assert NO_ANSWER not in squash(doc.find("p", role="status").text)


def test_templates_ship_inside_the_package():
    web = files("clipsearch.serve") / "web"

    assert (web / "search.html").is_file() and (web / "style.css").is_file()
