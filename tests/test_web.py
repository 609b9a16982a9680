"""The web search page in a real headless Chromium (Debian's, driven by Playwright) against a live server."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES, REPO, read_jsonl

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the test extra is missing: fail below with the fix, never skip
    sync_playwright = None

pytestmark = pytest.mark.browser

# Playwright's own browser download cannot work here: drive Debian's chromium (`make install` adds it).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "reports" / "screenshots"
CLIPS = {clip["id"]: clip for clip in read_jsonl(EXAMPLES / "clips.jsonl")}
QUESTION = "my chain squeaks, what should I put on it?"
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        pytest.fail("the browser tests need playwright: run `make install` (pip install -e '.[test]')")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: run `make install`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A page without JavaScript: the search page must work as a plain HTML form."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1000, "height": 900})
    yield context.new_page()
    context.close()


def test_typing_a_question_finds_the_clip_and_its_moment(live_server, page):
    page.goto(live_server.url + "/")
    page.get_by_label("Question").fill(QUESTION)
    page.get_by_role("button", name="Search").click()

    page.wait_for_url(re.compile(r"/\?q=my\+chain\+squeaks"))
    expect(page.get_by_role("status")).to_contain_text("clips for")
    expect(page.get_by_label("Question")).to_have_value(QUESTION)
    first = page.locator("article").first
    bike = CLIPS["bike-04"]
    expect(first.get_by_role("heading")).to_have_text(bike["question"])
    expect(first.locator(".range")).to_have_text("04:00 \u2013 05:00")
    expect(first.locator(".source")).to_have_text(bike["source"])
    expect(first.locator("mark")).not_to_be_empty()
    link = first.get_by_role("link")
    expect(link).to_have_attribute("href", bike["url"] + "&t=240s")
    clip = json.loads(first.locator('script[type="application/ld+json"]').text_content())
    assert clip == {
        "@context": "https://schema.org",
        "@type": "Clip",
        "name": bike["question"],
        "startOffset": 240,
        "endOffset": 300,
        "url": bike["url"] + "&t=240s",
    }
    page.screenshot(path=_screenshot("search.png"))


def test_a_query_nothing_answers_says_so(live_server, page):
    page.goto(live_server.url + "/?q=how+do+I+fix+a+puncture&source=No+such+channel")

    expect(page.get_by_role("status")).to_have_text("No clip answers that.")
    expect(page.locator("article")).to_have_count(0)


def test_a_refused_query_shows_why_on_the_page(live_server, page):
    response = page.goto(live_server.url + "/?q=+++&k=3")

    assert response.status == 422
    expect(page.get_by_role("alert")).not_to_be_empty()
    expect(page.get_by_label("Results")).to_have_value("3")
    expect(page.locator("article")).to_have_count(0)


def test_the_page_fits_a_phone_without_horizontal_scroll(live_server, browser):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    try:
        page.goto(live_server.url + "/?q=" + QUESTION.replace(" ", "+") + "&k=5")
        expect(page.locator("article")).to_have_count(5)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1] == PHONE["width"]
        page.screenshot(path=_screenshot("search-phone.png"), full_page=False)
    finally:
        context.close()


def _screenshot(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
