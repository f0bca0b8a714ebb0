"""Pictures of the method: blocks on text, layouts as tables, attention masks as heat maps, widgets.

Every plot here is something a reader should look at while reading the paper's section 3: in a
mask, rows are *queries*, columns are *keys*, and a filled cell means the query may attend to the
key (True in every mask of this package). The notebooks import these functions; ``python -m
pmlm.figures`` uses them to draw ``figures/``; ``tests/test_viz.py`` checks them.

Modules, in the order of the notebooks (every name is also importable from ``pmlm.viz``):

* :mod:`pmlm.viz.common`: what all pictures share: :func:`split_words` (display words),
  :func:`step_color`, :func:`figure_png`, :data:`ROLE_NAMES`.
* :mod:`pmlm.viz.widgets`: what the three widgets share (imported by them, with ipywidgets):
  :class:`WidgetBox` (with a static copy for viewers without widgets), :func:`show_figure` (a
  picture at the size it is shown), :func:`debounced` (redraw when the reader pauses typing).
* The method in one picture (README): :mod:`pmlm.viz.diagram`: :func:`plot_pmlm_diagram`.
* Algorithm 1 on text (notebook 1): :mod:`pmlm.viz.blocks`: :func:`block_spans`,
  :func:`render_blocks_text` / :func:`render_blocks_html`, :func:`plot_blocks`;
  :mod:`pmlm.viz.sampler`: :func:`sampler_statistics`, :func:`plot_sampler_histograms`,
  :func:`replacement_statistics`, :func:`plot_replacement`, :func:`masking_widget`.
* Pseudo masks and the attention mask (notebook 2): :mod:`pmlm.viz.layout`:
  :func:`worked_example`, :func:`text_example`, :func:`layout_rows` / :func:`layout_table`,
  :func:`parse_blocks`, :func:`check_steps`, :func:`layout_widget`; :mod:`pmlm.viz.masks`: :func:`mask_to_text`,
  :func:`plot_attention_mask`, :func:`reachable`, :func:`plot_leak_paths`.
* One pass, two objectives (notebook 3): :mod:`pmlm.viz.passes`: :func:`word_vocabulary` /
  :func:`encode_words` (a deterministic vocabulary for checked outputs), :func:`plot_pass_costs`
  (with :mod:`pmlm.naive`).
* Trained models (notebook 4): :mod:`pmlm.viz.trained`: :func:`attention_probabilities`,
  :func:`plot_attention_weights`, :func:`plot_loss_curves`.
* A trained model at work: :mod:`pmlm.viz.fill_in`: :func:`fill_in_predictions`,
  :func:`default_blocks`, :func:`fill_in_widget` (AE and PAR fill-ins with probabilities, attention of a layer and head, an
  AE-only twin beside it; the reference model by default).
* Decoding (notebook 5): :mod:`pmlm.viz.decoding`: :func:`decoding_steps`, :func:`plot_cached_decoding`.
* Table 6 (notebook 6): :mod:`pmlm.viz.table6`: :data:`PAPER_TABLE6`, :func:`paper_vs_ours`,
  :func:`plot_paper_vs_ours`.

matplotlib and ipywidgets are imported inside the functions that need them, so ``import pmlm``
stays light. The widgets render their views as HTML and PNG values (no ``Output`` capture), so a
widget built without a browser or a kernel holds its current picture and can be tested;
``tests/browser/`` drives them in JupyterLab in a real browser (``make browser-test``).
"""

from pmlm.viz.blocks import block_spans, plot_blocks, render_blocks_html, render_blocks_text
from pmlm.viz.common import MASK_TOKEN, PSEUDO_TOKEN, ROLE_NAMES, figure_png, split_words, step_color
from pmlm.viz.decoding import decoding_steps, plot_cached_decoding
from pmlm.viz.diagram import plot_pmlm_diagram
from pmlm.viz.fill_in import default_blocks, fill_in_predictions, fill_in_widget
from pmlm.viz.layout import (
    check_steps, layout_rows, layout_table, layout_widget, parse_blocks, text_example, token_labels, worked_example,
)
from pmlm.viz.masks import (
    leak_cells, mask_to_text, plot_attention_mask, plot_leak_paths, reachable, step_groups,
)
from pmlm.viz.passes import encode_words, plot_pass_costs, word_vocabulary
from pmlm.viz.sampler import (
    masking_widget, plot_replacement, plot_sampler_histograms, proposal_lengths, replacement_statistics,
    sampler_statistics, summarize_sampler,
)
from pmlm.viz.table6 import PAPER_TABLE6, paper_vs_ours, plot_paper_vs_ours
from pmlm.viz.trained import attention_probabilities, plot_accuracy_by_step, plot_attention_weights, plot_loss_curves

__all__ = [
    "MASK_TOKEN", "PAPER_TABLE6", "PSEUDO_TOKEN", "ROLE_NAMES", "attention_probabilities", "block_spans", "check_steps",
    "decoding_steps", "default_blocks",
    "encode_words", "figure_png", "fill_in_predictions", "fill_in_widget", "layout_rows", "layout_table", "layout_widget", "leak_cells",
    "mask_to_text", "masking_widget", "paper_vs_ours", "parse_blocks", "plot_attention_mask",
    "plot_accuracy_by_step", "plot_attention_weights", "plot_blocks", "plot_cached_decoding", "plot_leak_paths", "plot_loss_curves", "plot_pass_costs",
    "plot_paper_vs_ours", "plot_pmlm_diagram", "plot_replacement", "plot_sampler_histograms", "proposal_lengths", "reachable",
    "render_blocks_html", "render_blocks_text", "replacement_statistics", "sampler_statistics",
    "split_words", "step_color", "step_groups", "summarize_sampler", "text_example", "token_labels",
    "word_vocabulary", "worked_example",
]
