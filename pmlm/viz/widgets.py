"""What the three widgets of the notebooks share: the box, its pictures, its redraw, its static copy.

The widgets (:func:`pmlm.viz.masking_widget`, :func:`pmlm.viz.layout_widget`,
:func:`pmlm.viz.fill_in_widget`) are ``ipywidgets`` boxes whose views are HTML and PNG values, so
that they can be built and checked without a browser. This module holds what they have in common:

* :func:`show_figure` draws a matplotlib figure into an ``ipywidgets.Image`` at twice the
  resolution it is shown at (sharp on a high-density screen, in 256 colours: :func:`compact_png`)
  and fixes the width it is shown at, the height following from the picture: no layout stretches
  or squeezes it, and it shrinks with its aspect kept when the notebook is narrower.
  :func:`hide_figure` hides it while an error message stands in its place, so that no
  broken-image icon shows beside the message.
* :func:`debounced` wraps a redraw for the observers of a text field: a change made in Python
  redraws at once (so that a cell which sets a control can read the views on the next line), a
  change typed in the browser redraws when the reader pauses (a short delay after the last
  keystroke, on the kernel's event loop), so that the widget follows the typing without redrawing
  at every key.
* :class:`WidgetBox` is the ``VBox`` they return, with ``controls``, ``views`` and ``update``. Its
  display carries, beside the live widget, a static copy of what it shows (HTML, pictures inline)
  and a one-line text. A viewer picks one of the three: JupyterLab the widget once the notebook
  runs and the copy before, the docs site the widget from the state saved in the notebook, a
  viewer without widgets the copy or the line; none shows ``VBox(children=(...``.

Choice: 72 CSS pixels per inch of figure, the size at which the widgets' figures have always been
shown; a figure of 10 inches is then 720 pixels wide and fits a notebook beside an open side panel.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io

import ipywidgets as W

from pmlm.viz.common import figure_png

CSS_PX_PER_INCH = 72  # how large a figure inch is shown
SCALE = 2  # pixels drawn per CSS pixel shown: sharp on a screen of device pixel ratio 2
DEBOUNCE_S = 0.3  # a pause in the typing this long redraws


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels of a PNG, read from its header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG: the first 8 bytes are not the PNG signature")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def compact_png(png: bytes) -> bytes:
    """The PNG with at most 256 colours (median cut, no dithering): about a third of the bytes.

    A plot has few colours besides the anti-aliasing of its text; the notebooks store every picture
    a widget shows (in its saved state and in its static copy), so a smaller one is worth the 0.1 s.
    """
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        paletted = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    paletted.save(out, format="PNG", optimize=True)
    return out.getvalue()


def show_figure(image, fig) -> None:
    """Draw ``fig`` into the ``ipywidgets.Image`` ``image`` at the size it is shown, and close it.

    The width shown is fixed (``CSS_PX_PER_INCH`` per figure inch); the height is ``auto``, so it
    follows the picture's own aspect, also when ``max-width: 100%`` shrinks a picture wider than the
    notebook.
    """
    png = compact_png(figure_png(fig, dpi=CSS_PX_PER_INCH * SCALE))
    width, _ = png_size(png)
    image.value = png
    image.layout.width = f"{round(width / SCALE)}px"
    image.layout.height = "auto"
    image.layout.max_width = "100%"
    image.layout.margin = "2px 0"  # no side margins: 100% then fits exactly
    image.layout.align_self = "flex-start"  # never stretched across a flex box
    image.layout.display = None


def hide_figure(image) -> None:
    """Empty ``image`` and take it out of the layout (an empty image shows a broken-image icon)."""
    image.value = b""
    image.layout.display = "none"


def debounced(redraw, delay: float = DEBOUNCE_S):
    """An observer that calls ``redraw()`` at once for a change made in Python, after a pause for a typed one.

    A change typed in the browser arrives while ipywidgets holds the property lock of the widget
    (it sets the value from the browser's message); then the redraw waits ``delay`` seconds on the
    kernel's event loop, and a later keystroke cancels and restarts the wait. Without a running
    event loop (a script, a test) every change redraws at once.
    """
    pending = []

    def observe(change) -> None:
        while pending:
            pending.pop().cancel()
        owner = change.get("owner") if isinstance(change, dict) else None
        typed = bool(getattr(owner, "_property_lock", None))  # set while a browser message applies
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if typed and loop is not None:
            pending.append(loop.call_later(delay, redraw))
        else:
            redraw()

    return observe


def static_html(widget) -> str:
    """An HTML copy of what ``widget`` shows now: HTML views, pictures inline, controls as text."""
    if isinstance(widget, W.Box):
        inner = "".join(static_html(c) for c in widget.children)
        if isinstance(widget, W.HBox):
            return f"<div style='display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start'>{inner}</div>"
        return f"<div>{inner}</div>"
    if widget.layout.display == "none":
        return ""
    if isinstance(widget, W.HTML):
        return f"<div>{widget.value}</div>"
    if isinstance(widget, W.Image):
        if not widget.value:
            return ""
        width = (widget.layout.width or "").removesuffix("px")
        src = "data:image/png;base64," + base64.b64encode(bytes(widget.value)).decode("ascii")
        size = f" width='{width}'" if width.isdigit() else ""
        return f"<div><img src='{src}'{size} alt='figure'></div>"
    if isinstance(widget, (W.Text, W.IntSlider, W.FloatSlider)):
        return (f"<div style='margin:2px 12px 2px 0'><b>{html.escape(widget.description)}</b>: "
                f"<code>{html.escape(str(widget.value))}</code></div>")
    return ""


class WidgetBox(W.VBox):
    """The box a widget function returns: ``controls``, ``views`` and ``update()``, plus a static copy.

    ``name`` opens the one-line text and the copy (e.g. ``"the fill-in widget"``).
    """

    def __init__(self, children, *, controls: dict, views: dict, update, name: str):
        super().__init__(children, layout=W.Layout(max_width="100%"))
        self.controls, self.views, self.update, self.name = controls, views, update, name

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs)
        data["text/plain"] = f"{self.name}: a widget, live when the notebook runs (JupyterLab, Colab, VS Code)"
        data["text/html"] = (f"<p><i>{html.escape(self.name)}, as it was when the notebook was last run: a "
                             "static copy for viewers without widgets; run the notebook to use it.</i></p>"
                             + static_html(self))
        return data
