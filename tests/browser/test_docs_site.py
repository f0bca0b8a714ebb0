"""The offline docs site (``make docs``, in build/site) opened from ``file://`` with the network blocked.

Every page of the site that holds widgets must render each of them from the widget state saved in
its notebook, with the copy of the widget renderer that the site carries (scripts/build_docs.py):
every widget view of the page becomes a live widget, its pictures load, it fits the page, and no
script, style sheet or font is asked of the network. The one thing the pages do ask of it is the
Colab badge, an image; its blocked load is allowed (and only that). Screenshots land in
``build/browser/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab_driver import fit_problems, watch

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "site"
VIEW = '<script type="application/vnd.jupyter.widget-view+json">'


def widget_pages() -> list[Path]:
    if not (SITE / "index.html").is_file():
        pytest.fail("no build/site: run make docs first (make browser-test does)")
    pages = sorted(p for p in (SITE / "notebooks").glob("*.html") if VIEW in p.read_text(encoding="utf-8"))
    for page in pages:
        source = ROOT / "notebooks" / f"{page.stem}.ipynb"
        if source.stat().st_mtime > page.stat().st_mtime:
            pytest.fail(f"build/site is older than {source.relative_to(ROOT)}: run make docs")
    return pages


@pytest.fixture
def offline_page(browser):
    """A page whose requests other than ``file://`` are aborted; ``page.blocked`` lists them."""
    page = browser.new_page()
    page.errors = watch(page)
    page.blocked = []

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            page.blocked.append((r.request.resource_type, r.request.url))
            r.abort()

    page.route("**/*", route)
    yield page
    page.close()


def test_the_site_has_pages_with_widgets():
    assert {p.stem for p in widget_pages()} >= {"01_blockwise_masking", "02_pseudo_masks", "04_pretraining"}


@pytest.mark.parametrize("name", ["01_blockwise_masking", "02_pseudo_masks", "04_pretraining"])
def test_every_widget_of_the_page_renders_offline(offline_page, name, shots):
    page = offline_page
    path = next(p for p in widget_pages() if p.stem == name)
    views = path.read_text(encoding="utf-8").count(VIEW)
    page.goto(path.as_uri())
    page.wait_for_function("""() => {
      const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
      return views.length > 0 && views.every(v => {
        const w = v.parentElement.querySelector('.lm-Widget');
        return w && w.getBoundingClientRect().width > 0 &&
               [...w.querySelectorAll('img')].every(i => i.complete);
      });
    }""", timeout=30_000, polling=250)
    page.add_style_tag(content=".md-header { display: none; }")  # the sticky header would cover a screenshot
    roots = page.locator(".jp-OutputArea-output .widget-vbox:not(.widget-vbox .widget-vbox)")  # the outermost
    assert roots.count() == views, f"{name}: {roots.count()} widgets rendered of {views}"
    for i in range(views):
        root = roots.nth(i)
        root.scroll_into_view_if_needed()
        root.screenshot(path=str(shots / f"site_{name}_widget{i + 1}.png"))
        assert root.evaluate("e => [...e.querySelectorAll('img')].some(i => i.naturalWidth > 0)"), \
            f"{name}: widget {i + 1} shows no picture"
        assert fit_problems(root) == [], f"{name}: widget {i + 1} does not fit the page"
    network = [(kind, url) for kind, url in page.blocked if kind != "image"]
    assert network == [], f"{name}: the page asks the network for {network}"
    badge = all(re.match(r"https://colab\.research\.google\.com/", url) for _, url in page.blocked)
    errors = [e for e in page.errors if not (badge and "Failed to load resource" in e)]
    assert errors == [], f"{name}: {errors}"


def test_the_search_and_the_front_page_need_no_network(offline_page):
    page = offline_page
    page.goto((SITE / "index.html").as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(1000)  # the search worker starts through the iframe-worker shim
    assert page.blocked == [], f"the front page asks the network for {page.blocked}"
    assert page.errors == [], page.errors
