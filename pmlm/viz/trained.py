"""What a trained model does: its attention weights and its loss curves (notebook 4, ``make demo``).

:func:`attention_probabilities` recomputes the softmax weights of one layer of a
:class:`pmlm.PMLMModel`, under the PMLM attention mask of section 3.2 and the relative position
bias of section 4.1 (the model calls SDPA, which does not return them), and
:func:`plot_attention_weights` draws one head: row = query, column = key.
:func:`plot_loss_curves` draws the AE and PAR losses (Eqs. 4-5, section 3.3) and accuracies of a
:mod:`pmlm.train` run from its ``metrics.jsonl``, beside the unigram baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def attention_probabilities(model, batch: dict[str, torch.Tensor], layer: int = -1) -> torch.Tensor:
    """Softmax attention weights (B, h, L, L) of one layer of a :class:`pmlm.PMLMModel`.

    The model calls SDPA, which does not return the weights; a forward hook takes the layer's input
    and recomputes ``softmax(q k^T / sqrt(d) + bias)`` with the same mask and relative bias.
    Rows sum to 1 and are 0 wherever the mask is False.
    """
    import math

    attention = model.layers[layer].attention
    captured = {}
    handle = attention.register_forward_hook(lambda mod, args, out: captured.update(x=args[0]))
    was_training = model.training
    model.eval()
    try:
        model.encode(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch.get("segment_ids"))
    finally:
        handle.remove()
        model.train(was_training)
    x = captured["x"]
    # the mask and relative bias SDPA gets: bool (B, 1, L, L), or float with -inf where forbidden
    attn_mask = model.attention_bias(batch["position_ids"], batch["attention_mask"], x.dtype)
    B, L, H = x.shape
    q, k, _ = attention.qkv(x).split(H, dim=-1)  # 2 x (B, L, H)
    q, k = (t.view(B, L, attention.h, H // attention.h).transpose(1, 2) for t in (q, k))  # (B, h, L, d)
    scores = q @ k.transpose(-1, -2) / math.sqrt(H // attention.h)  # (B, h, L, L)
    if attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    else:
        scores = scores + attn_mask  # relative bias with -inf where the mask is False
    return scores.softmax(-1)


def plot_attention_weights(weights: torch.Tensor, labels: Sequence[str] | None = None, *, ax=None,
                           step_ids: torch.Tensor | None = None, title: str | None = None,
                           colorbar: bool = True):
    """Heat map of one head's (L, L) attention weights: row = query, column = key.

    With ``step_ids`` a crimson line separates the context from the appended tokens (as in
    :func:`pmlm.viz.plot_attention_mask`); ``colorbar`` adds the scale of the probabilities.
    """
    import matplotlib.pyplot as plt

    w = torch.as_tensor(weights).float().cpu()
    L = w.shape[-1]
    if ax is None:
        size = max(4.0, min(14.0, 0.3 * L + 1.5))
        _, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(w.numpy(), cmap="Oranges", vmin=0, vmax=float(w.max()), interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention probability")
    if labels is not None and L <= 80:
        ax.set_xticks(range(L), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(L), labels, fontsize=7)
    if step_ids is not None:
        n = int((torch.as_tensor(step_ids) == 0).sum())
        ax.axhline(n - 0.5, color="crimson", lw=1.2)
        ax.axvline(n - 0.5, color="crimson", lw=1.2)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title or "attention weights", fontsize=10)
    return ax


def plot_loss_curves(metrics_path, ax=None, *, smooth: int = 5):
    """AE and PAR loss (and accuracy) against the optimizer step, from a run's ``metrics.jsonl``.

    ``ax``: None draws two panels, loss and validation accuracy, and returns both axes; one Axes
    gets the loss panel only; a pair of Axes gets both. Thin lines: training loss of each objective
    (running mean over ``smooth`` log lines); lines with dots: validation on the run's fixed
    examples and masks. An objective the run does not train (PAR under ``--objective ae``) still
    shows its validation numbers: the evaluation always lays out both. Dashed grey: the unigram
    baseline (predicting from word-piece frequencies alone), when the run logged it. Accuracy is
    on the positions shown as ``[M]`` (and the baseline on the same tokens) when the run logged it.
    """
    import json
    from pathlib import Path

    import matplotlib.pyplot as plt

    path = Path(metrics_path)
    path = path / "metrics.jsonl" if path.is_dir() else path
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a killed run may leave a partial last line
    if ax is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    else:
        axes = ax if isinstance(ax, (list, tuple)) or hasattr(ax, "flat") else [ax]
    loss_ax, acc_ax = axes[0], (axes[1] if len(axes) > 1 else None)
    start = next((r for r in records if r.get("event") == "start"), {})
    colors = {"ae": "tab:blue", "par": "tab:orange"}
    val_records = [r for r in records if r.get("split") == "val"]
    m_only = bool(val_records) and val_records[-1].get("val_ae_m_acc") is not None  # pmlm >= 0.2 runs
    for name in ("ae", "par"):
        train = [(r["step"], r[f"{name}_loss"]) for r in records
                 if r.get("split") == "train" and r.get(f"{name}_loss") is not None]
        if train:
            steps, values = zip(*train)
            window = [values[max(0, i - smooth + 1):i + 1] for i in range(len(values))]
            loss_ax.plot(steps, [sum(w) / len(w) for w in window], color=colors[name], lw=1,
                         alpha=0.6, label=f"{name.upper()} train")
        val = [r for r in records if r.get("split") == "val"]
        if val:
            steps = [r["step"] for r in val]
            loss_ax.plot(steps, [r[f"val_{name}_loss"] for r in val], "o-", color=colors[name], lw=2,
                         ms=4, label=f"{name.upper()} validation")
            if acc_ax is not None:
                key = f"val_{name}_m_acc" if m_only else f"val_{name}_acc"
                acc_ax.plot(steps, [r[key] for r in val], "o-", color=colors[name],
                            lw=2, ms=4, label=f"{name.upper()} validation" + (" ([M] only)" if m_only else ""))
    baselines = {"unigram_val_loss": start.get("unigram_val_loss"),
                 "unigram_val_acc": val_records[-1]["unigram_m_acc"] if m_only else start.get("unigram_val_acc")}
    for a, key, what in ((loss_ax, "unigram_val_loss", "cross entropy (nats per masked token)"),
                         (acc_ax, "unigram_val_acc", "top-1 accuracy on masked tokens"
                          + (" shown as [M]" if m_only else ""))):
        if a is None:
            continue
        if baselines[key] is not None:
            a.axhline(baselines[key], color="grey", ls="--", lw=1, label="unigram baseline")
        a.set_xlabel("optimizer step")
        a.set_ylabel(what)
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    loss_ax.set_title("PMLM pre-training: AE and PAR loss")
    if acc_ax is not None:
        acc_ax.set_title("validation accuracy (fixed masks)")
    return axes if acc_ax is not None else loss_ax


def plot_accuracy_by_step(by_step: list[dict], ax=None, *, title: str | None = None,
                          twin: list[dict] | None = None, twin_label: str = "AE-only model (from its [M])"):
    """AE and PAR accuracy of the same masked tokens against their factorization step (bars from 0).

    ``by_step`` as :func:`pmlm.train.evaluation.accuracy_by_step` returns it. PAR of step i has seen
    the originals of the earlier steps; AE, from the ``[M]``, sees none: the gap is what the
    partially autoregressive factorization adds as the steps go on. ``twin``: the same for another
    model on the same tokens (an AE-only twin), whose AE accuracy is drawn as a third, grey bar.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    if twin is not None and [r["step"] for r in twin] != [r["step"] for r in by_step]:
        raise ValueError("the twin's accuracy by step must cover the same steps (score both on the same batches)")
    steps = [r["step"] for r in by_step]
    labels = [str(s) if i < len(steps) - 1 else f"{s}+" for i, s in enumerate(steps)]
    x = range(len(steps))
    series = [("ae_acc", by_step, "AE (from its [M])", "tab:blue"), ("par_acc", by_step, "PAR (from its [P])",
                                                                    "tab:orange")]
    if twin is not None:
        series.append(("ae_acc", twin, twin_label, "0.55"))
    width = 0.8 / len(series)
    for k, (key, rows, label, color) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * width
        ax.bar([i + offset for i in x], [r[key] for r in rows], width, label=label, color=color)
    top = max(r[key] for key, rows, _, _ in series for r in rows)
    for i, r in enumerate(by_step):
        ax.text(i, top * 1.05 + 0.005, f"{r['tokens']:,}", ha="center", fontsize=7, color="#555")
    ax.set_xticks(list(x), labels)
    ax.set_ylim(0, top * 1.25 + 0.01)
    ax.set_xlabel("factorization step of the masked token (numbers: tokens)")
    ax.set_ylabel("top-1 accuracy, masked tokens shown as [M]")
    ax.set_title(title or "Does a later step, which sees more originals, predict better?", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return ax
