"""The widgets of notebooks 1, 2 and 4 in JupyterLab in Chromium, used as a learner uses them.

Each test opens its notebook in a 1280 x 800 window with the file browser open (about 850 px of
notebook), first checks what the stored notebook shows before it runs (the static copy of the
widget, not ``VBox(children=...``), then runs every cell in smoke mode (``CI=true``), changes each
control of the widget as a reader would (typing without Enter, a slider's readout) and after each
change requires a redraw, no error message where the input is good, a clear one where it is bad,
and a widget that fits the notebook with its pictures at the aspect they were drawn at. Any
traceback in the notebook or console error of the page fails the test. Screenshots land in
``build/browser/``.
"""

from __future__ import annotations

import re

import pytest

from lab_driver import (
    errors_in_outputs, fit_problems, open_notebook, run_all, screenshot, set_slider, shut_down_kernels, text_field,
    type_text, wait_redraw, watch, widget,
)

pytestmark = pytest.mark.browser

RUN_TIMEOUT_S = 300  # a whole notebook in smoke mode; notebook 4 takes about 30 s on 2 cores

# the elements (of ``selector``) shown on more lines than their text has: a line wrapped by the layout
WRAPPED_JS = """(root, selector) => [...root.querySelectorAll(selector)].filter(el => {
  const range = document.createRange();
  range.selectNodeContents(el);
  const shown = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top))).size;
  return shown > el.textContent.replace(/\\n+$/, '').split('\\n').length;
}).map(el => el.textContent.trim().slice(0, 80))"""


@pytest.fixture
def page(browser, lab):
    page = browser.new_page()
    page.errors = watch(page)
    yield page
    page.close()
    shut_down_kernels(lab)


def start(page, lab, name: str, code: str, shots=None):
    """Open the notebook, check its stored copy of the widget, run it all; return the live widget."""
    open_notebook(page, lab, name)
    assert page.locator("#filebrowser").is_visible(), "the file browser (the side panel) is not open"
    stored = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea-editor", has_text=code)) \
        .locator(".jp-OutputArea-output").first
    text = stored.inner_text()
    assert "VBox(" not in text and "static copy" in text, f"{name}: before it runs, the widget cell shows {text[:200]!r}"
    assert stored.evaluate("e => [...e.querySelectorAll('img')].some(i => i.naturalWidth > 0)"), \
        f"{name}: the stored copy of the widget shows no picture"
    run_all(page, RUN_TIMEOUT_S, failure_shot=shots / f"failed_{name}.png" if shots else None)
    assert errors_in_outputs(page) == [], f"{name}: an output holds an error"
    root = widget(page, code)
    width = root.evaluate("e => e.closest('.jp-OutputArea-output').getBoundingClientRect().width")
    assert width < 900, f"the notebook's output area is {width:.0f} px wide: the side panel should narrow it"
    assert fit_problems(root) == [], f"{name}: the widget does not fit or shows a picture badly"
    return root


def check(page, root, after: str):
    assert fit_problems(root) == [], f"after {after}: the widget does not fit or shows a picture badly"
    assert page.errors == [], f"after {after}: {page.errors}"


def test_masking_widget_redraws_for_each_slider(page, lab, shots):
    root = start(page, lab, "01_blockwise_masking", "viz.masking_widget(", shots)
    screenshot(page, root, shots / "lab_01_masking_widget.png")
    for name, value in [("ratio", "0.37"), ("block p", "0.8"), ("seed", "7")]:
        before = root.inner_html()
        set_slider(root, name, value)
        wait_redraw(page, root, before, f"setting {name} to {value}")
        check(page, root, f"setting {name} to {value}")
    share = float(re.search(r"masked \(([\d.]+)%\)", root.inner_text()).group(1))
    assert share >= 37, f"with the ratio at 0.37 the sentence has only {share}% masked"
    screenshot(page, root, shots / "lab_01_masking_widget_changed.png")


def test_layout_widget_follows_typing_and_says_what_it_cuts(page, lab, shots):
    root = start(page, lab, "02_pseudo_masks", "viz.layout_widget(", shots)
    screenshot(page, root, shots / "lab_02_layout_widget.png")
    long = ("Mr. Bennet replied that he had not, and his wife said that she had heard it from Mrs. Long, "
            "who had just been there.")
    before = root.inner_html()
    type_text(page, root, "sentence", long)
    wait_redraw(page, root, before, "typing a long sentence (no Enter)")
    assert re.search(r"has \d+ words; the widget lays out the first 20", root.inner_text())
    check(page, root, "typing a long sentence")

    before = root.inner_html()
    type_text(page, root, "blocks", "22")
    wait_redraw(page, root, before, "typing blocks past the cut")
    text = root.inner_text()
    assert "step 1 masks word 22, outside the words 0..19" in text, text[-300:]
    check(page, root, "typing blocks past the cut")  # includes: no broken-image icon beside the message

    before = root.inner_html()
    type_text(page, root, "blocks", "9-10; 3")
    wait_redraw(page, root, before, "typing good blocks")
    assert "crimson" not in root.inner_html() and "appended" in root.inner_text()
    assert root.evaluate(WRAPPED_JS, "pre") == [], "the layout table wraps a line (the divider?)"
    check(page, root, "typing good blocks")
    screenshot(page, root, shots / "lab_02_layout_widget_changed.png")


def test_fill_in_widget_follows_a_new_sentence_and_every_control(page, lab, shots):
    import pmlm
    from pmlm import viz

    root = start(page, lab, "04_pretraining", "viz.fill_in_widget(", shots)
    screenshot(page, root, shots / "lab_04_fill_in_widget.png")
    assert root.evaluate(WRAPPED_JS, "td, th") == [], "a cell of the guess table wraps onto two lines"
    table_bottom = root.evaluate("e => e.querySelector('table').getBoundingClientRect().bottom")
    map_top = root.evaluate("e => [...e.querySelectorAll('img')].pop().getBoundingClientRect().top")
    assert map_top >= table_bottom, "the attention map should sit below the table"

    sentence = "Mr. Darcy was not handsome enough to tempt him."
    _, tok = pmlm.load_reference()
    pieces = viz.fill_in.pieces_of(tok, sentence)
    before = root.inner_html()
    type_text(page, root, "sentence", sentence)
    wait_redraw(page, root, before, "typing a new sentence (no Enter)")
    blocks = text_field(root, "blocks").input_value()
    assert blocks == viz.default_blocks(pieces), f"the blocks did not follow the new sentence: {blocks!r}"
    first = int(blocks.split("-")[0].split(";")[0])
    text = root.inner_text()
    assert f"{first}:{pieces[first - 1]}" in text, "the list of pieces and the blocks number pieces differently"
    assert pieces[first - 1] in root.locator("table").inner_text()
    check(page, root, "typing a new sentence")
    screenshot(page, root, shots / "lab_04_fill_in_widget_new_sentence.png")

    before = root.inner_html()
    type_text(page, root, "blocks", "99")
    wait_redraw(page, root, before, "typing a block past the sentence")
    assert f"step 1 masks piece 99, outside the pieces 1..{len(pieces)}" in root.inner_text()
    check(page, root, "typing a block past the sentence")  # includes: no broken-image icon

    before = root.inner_html()
    type_text(page, root, "blocks", "6; 9")
    wait_redraw(page, root, before, "typing good blocks")
    assert "crimson" not in root.inner_html()
    check(page, root, "typing good blocks")
    for name, value in [("layer", "0"), ("head", "1")]:
        before = root.inner_html()
        set_slider(root, name, value)
        wait_redraw(page, root, before, f"setting {name} to {value}")
        check(page, root, f"setting {name} to {value}")
