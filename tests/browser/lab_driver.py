"""Driving JupyterLab and its widgets as a reader does: open a notebook, run it, change a control, look.

Every check reads the page itself, in JavaScript run in Chromium:

* :func:`errors_in_outputs`: a traceback in any output, or a widget that could not be displayed;
* :func:`fit_problems`: an element of a widget that ends right of the notebook's output area (cut
  off or scrolled away on a 1280 px screen with the side panel open), a picture shown at another
  aspect than it was drawn at or blown up past its pixels, a visible image without a picture (the
  broken-image icon);
* :func:`wait_redraw`: the widget's HTML (which holds the pictures' blob addresses) changes after a
  control is changed, within a time limit;
* :func:`watch`: the console errors and uncaught exceptions of the page.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

RUN_ALL = "runmenu:run-all"  # JupyterLab 4's "Run All Cells" in the Run menu

FIT_JS = """root => {
  const out = root.closest('.jp-OutputArea-output') || root.parentElement;
  const limit = out.getBoundingClientRect().right;
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
      ? '.' + el.className.trim().split(/\\s+/).slice(0, 3).join('.') : '');
  const problems = [];
  for (const el of [root, ...root.querySelectorAll('*')]) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > limit + 1)
      problems.push(`${name(el)} ends at x=${Math.round(r.right)}, past the output area's ${Math.round(limit)}`);
  }
  for (const img of root.querySelectorAll('img')) {
    const r = img.getBoundingClientRect();
    if (getComputedStyle(img).display === 'none' || r.width === 0) continue;
    if (!img.complete || img.naturalWidth === 0) { problems.push('an image without a picture (broken-image icon)'); continue; }
    const drawn = img.naturalWidth / img.naturalHeight, shown = r.width / r.height;
    if (Math.abs(shown / drawn - 1) > 0.01)
      problems.push(`an image shown at aspect ${shown.toFixed(3)}, drawn at ${drawn.toFixed(3)} (stretched)`);
    if (r.width > img.naturalWidth + 1)
      problems.push(`an image of ${img.naturalWidth} px shown ${Math.round(r.width)} px wide (blown up)`);
  }
  return problems.slice(0, 8);
}"""


def watch(page) -> list[str]:
    """The list that collects the page's console errors and uncaught exceptions from now on."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(f"console error: {m.text[:300]}") if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.append(f"uncaught: {str(e)[:300]}"))
    return seen


def open_notebook(page, lab: dict, name: str) -> None:
    """Open ``name``.ipynb in a workspace of its own and wait for its kernel to be idle."""
    page.goto(f"{lab['url']}/lab/workspaces/{name}/tree/{name}.ipynb?token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")


PROMPTS_JS = "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"
STARTED_JS = r"""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
  .some(e => /\[(\*|\d+)\]/.test(e.textContent))"""
DONE_JS = r"""() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
  const busy = prompts.some(t => t.includes('*'));
  const failed = [...document.querySelectorAll('.jp-OutputArea-output')].some(e => e.textContent.includes('Traceback'));
  return prompts.length > 0 && !busy && (failed || prompts.every(t => /\[\d+\]/.test(t)));
}"""


def run_all(page, timeout_s: float, failure_shot=None) -> None:
    """Run > Run All Cells, then wait until every code cell has run (or one failed and the run stopped).

    The menu is clicked again if no cell has started 15 s later (a click that landed while the page
    was still settling); on a time-out the screenshot ``failure_shot`` shows where the notebook stood.
    """
    from playwright.sync_api import Error as PlaywrightError  # here: make test collects this file without it

    def click():
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(f"li.lm-Menu-item[data-command='{RUN_ALL}']").click()

    click()
    try:
        page.wait_for_function(STARTED_JS, timeout=15_000, polling=250)
    except PlaywrightError:
        page.keyboard.press("Escape")
        click()
    try:
        page.wait_for_function(DONE_JS, timeout=timeout_s * 1000, polling=500)
    except PlaywrightError as err:
        if failure_shot is not None:
            page.screenshot(path=str(failure_shot))
        raise AssertionError(f"the notebook did not finish within {timeout_s:.0f} s; prompts: "
                             f"{page.evaluate(PROMPTS_JS)}") from err


def errors_in_outputs(page) -> list[str]:
    """The first lines of the outputs that hold a traceback, or a widget that could not be displayed."""
    return page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')]
      .map(e => e.textContent)
      .filter(t => t.includes('Traceback') || t.includes('Error displaying widget'))
      .map(t => t.trim().slice(0, 400))""")


def widget(page, code: str):
    """The outermost widget in the output of the code cell whose source contains ``code``."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea-editor", has_text=code))
    root = cell.locator(".jp-OutputArea-output .widget-vbox").first
    root.wait_for(state="visible")
    return root


def fit_problems(root) -> list[str]:
    """What does not fit, or is not shown as drawn (see the module docstring); empty when all is well."""
    return root.evaluate(FIT_JS)


def wait_redraw(page, root, before: str, what: str, timeout_s: float = 30) -> str:
    """Wait until the widget's HTML differs from ``before``, then until it stops changing; return it."""
    deadline = time.monotonic() + timeout_s
    while root.inner_html() == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"the widget did not redraw within {timeout_s:.0f} s after {what}")
        page.wait_for_timeout(100)
    now = root.inner_html()
    for _ in range(int(timeout_s / 0.7) + 1):  # a redraw sets several views one after the other
        page.wait_for_timeout(700)
        later = root.inner_html()
        if later == now:
            return now
        now = later
    raise AssertionError(f"the widget kept changing for {timeout_s:.0f} s after {what}")


def text_field(root, description: str):
    return root.locator(f".widget-text:has(> .widget-label:text-is('{description}')) input")


def type_text(page, root, description: str, text: str) -> None:
    """Select the text field ``description`` and type ``text`` key by key, without Enter."""
    field = text_field(root, description)
    field.click()
    field.press("Control+a")
    field.press("Backspace")
    field.press_sequentially(text, delay=25)


def set_slider(root, description: str, value) -> None:
    """Type ``value`` into the readout of the slider ``description``, as a reader may, then Enter."""
    readout = root.locator(f".widget-slider:has(> .widget-label:text-is('{description}')) .widget-readout")
    readout.click()
    readout.press("Control+a")
    readout.press_sequentially(str(value))
    readout.press("Enter")


def screenshot(page, root, path) -> None:
    """A picture of the widget as shown at 1280 px wide, the window made tall enough to hold it whole."""
    height = root.evaluate("e => e.getBoundingClientRect().height")
    page.set_viewport_size({"width": 1280, "height": max(800, int(height) + 260)})
    root.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    root.screenshot(path=str(path))
    page.set_viewport_size({"width": 1280, "height": 800})


def shut_down_kernels(lab: dict) -> None:
    """End the sessions (and kernels) of the server, through its REST API."""
    headers = {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(f"{lab['url']}/api/sessions", headers=headers)) as r:
        sessions = json.load(r)
    for s in sessions:
        urllib.request.urlopen(urllib.request.Request(f"{lab['url']}/api/sessions/{s['id']}", method="DELETE",
                                                      headers=headers))
