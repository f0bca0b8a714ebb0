"""The blocks of the studies: fine-tuning against the control, the verses until they level off,
and Table 6 in miniature."""

from __future__ import annotations

from pmlm.reports.files import RESULTS, read_jsonl


def _spread(values: list[float], digits: int = 1) -> str:
    import statistics

    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def chosen_setting(rows: list[dict], init: str) -> dict | None:
    """The sentiment tuning row of ``init`` with the best validation accuracy (seed 0, all data)."""
    grid = [r for r in rows if r["task"] == "sentiment" and r["init"] == init and r.get("grid")]
    return max(grid, key=lambda r: (r["val_acc"], -r["lr"])) if grid else None


def finetune_block() -> str:
    """Reference model against the control, sentiment and verses (``results/finetune.jsonl``)."""
    import statistics

    rows = read_jsonl(RESULTS / "finetune.jsonl")
    if not rows:
        return "The fine-tuning study has not been run yet (`python benchmarks/finetune_study.py sentiment`)."
    m = rows[0]
    lines = [f"Measured by `benchmarks/finetune_study.py` on {m.get('machine', '?')}, {m.get('threads', '?')} "
             f"threads, torch {m.get('torch', '?')}, {m.get('date', '?')}; both initialisations have the "
             "reference model's architecture and tokenizer.", ""]
    sent = [r for r in rows if r["task"] == "sentiment"]
    means = {}
    if sent:
        lines += ["**Sentiment** (Rotten Tomatoes). Tuning at seed 0, validation accuracy (%), best epoch of up "
                  f"to {sent[0]['epochs']}:", "", "| init | lr | pooling | validation acc | best epoch |",
                  "|---|---|---|---|---|"]
        for r in sorted((r for r in sent if r.get("grid")), key=lambda r: (r["init"] != "reference", r["lr"], r["pooling"])):
            lines.append(f"| {r['init']} | {r['lr']:g} | {r['pooling']} | {100 * r['val_acc']:.1f} | {r['best_epoch']} |")
        lines += ["", "Test accuracy at each initialisation's chosen setting, mean ± sd over seeds (%):", "",
                  "| init | chosen lr, pooling | labelled sentences | seeds | test acc |", "|---|---|---|---|---|"]
        for init in ("reference", "control"):
            best = chosen_setting(rows, init)
            if best is None:
                continue
            for limit in sorted({r["train_limit"] for r in sent}, key=lambda x: -(x or 10**9)):
                runs = [r for r in sent if r["init"] == init and r["lr"] == best["lr"] and r["pooling"] == best["pooling"]
                        and r["train_limit"] == limit]
                if runs:
                    means[(init, limit)] = (statistics.fmean(r["test_acc"] for r in runs), len(runs))
                    lines.append(f"| {init} | {best['lr']:g}, {best['pooling']} | {runs[0]['n_train']:,} | {len(runs)} "
                                 f"| {_spread([100 * r['test_acc'] for r in runs])} |")
        lines.append(f"\nAlways answering the majority class scores {100 * sent[0]['majority_acc']:.1f}% on the same "
                     "test sentences.")
        for limit in sorted({k[1] for k in means}, key=lambda x: -(x or 10**9)):
            if ("reference", limit) in means and ("control", limit) in means:
                (a, na), (b, nb) = means[("reference", limit)], means[("control", limit)]
                size = "all the training sentences" if limit is None else f"{limit:,} labelled sentences"
                lines.append(f"Sentiment test accuracy, {size}: reference {100 * a:.1f}%, control {100 * b:.1f}% "
                             f"({na} and {nb} seeds; {100 * (a - b):+.1f} points).  ")
        if ("reference", None) in means and ("control", None) in means:
            gap = 100 * (means[("reference", None)][0] - means[("control", None)][0])
            verdict = "met" if gap >= 3 and min(means[("reference", None)][1], means[("control", None)][1]) >= 3 else "MISSED"
            lines.append(f"Target \"at least 3 points above the control, over at least 3 seeds\" on all the "
                         f"training sentences: {verdict} (reference - control = {gap:+.1f} points).")
    ver = [r for r in rows if r["task"] == "verses"]
    if ver:
        lines += ["", f"**Verses** (KJV -> WEB, test books; {ver[0]['n_test']} verses that fit "
                  f"the recipe's lengths, beam 4), mean ± sd over seeds:", "",
                  "| init | seeds | BLEU | chrF | copying the source: BLEU | chrF |", "|---|---|---|---|---|---|"]
        bleu = {}
        for init in ("reference", "control"):
            runs = [r for r in ver if r["init"] == init]
            if runs:
                bleu[init] = statistics.fmean(r["bleu"] for r in runs)
                lines.append(f"| {init} | {len(runs)} | {_spread([r['bleu'] for r in runs])} | "
                             f"{_spread([r['chrf'] for r in runs])} | {runs[0]['copy_bleu']:.1f} | {runs[0]['copy_chrf']:.1f} |")
        if len(bleu) == 2:
            gap = bleu["reference"] - bleu["control"]
            copy = ver[0]["copy_bleu"]
            lines.append(f"\nVerses test BLEU (beam 4, {ver[0]['n_test']} verses): reference {bleu['reference']:.1f}, "
                         f"control {bleu['control']:.1f}, copying the source {copy:.1f}.  ")
            lines.append(f"Target \"BLEU at least 10 above the control\": {'met' if gap >= 10 else 'MISSED'} "
                         f"({gap:+.1f}). Goal \"beat copying the source\": {'met' if bleu['reference'] > copy else 'MISSED'} "
                         f"(reference {bleu['reference']:.1f} against {copy:.1f}).")
        curve_lines = []
        for init in ("reference", "control"):
            curves = [r["curve"] for r in ver if r["init"] == init and r.get("curve")]
            if curves:
                steps = [p["step"] for p in curves[0]]
                avg = [statistics.fmean(c[i]["val_bleu"] for c in curves if i < len(c)) for i in range(len(steps))]
                curve_lines.append(f"{init}: " + ", ".join(f"{s}: {b:.1f}" for s, b in zip(steps, avg)))
        if curve_lines:
            copy_val = ver[0]["curve"][0]["val_copy_bleu"]
            lines += ["", f"Validation BLEU against fine-tuning steps (greedy, 100 validation verses, mean over seeds; "
                      f"copying scores {copy_val:.1f} on them):  ", "  \n".join(curve_lines)]
    return "\n".join(lines)


def verses_long_block() -> str:
    """The reference model on the verses until validation BLEU levels off (``verses-long`` rows of
    ``results/finetune.jsonl``): the curve, where it levelled off, test BLEU against copying."""
    rows = [r for r in read_jsonl(RESULTS / "finetune.jsonl") if r["task"] == "verses-long"]
    if not rows:
        return "Not run yet (`python benchmarks/finetune_study.py verses-long`)."
    r = rows[-1]
    at = r.get("levelled_off_at")
    curve = ", ".join(f"{p['step']:,}: {p['val_bleu']:.1f}" for p in r["curve"])
    best = max(r["curve"], key=lambda p: p["val_bleu"])
    lines = [f"Measured by `benchmarks/finetune_study.py verses-long` on {r['machine']}, {r['threads']} threads, "
             f"torch {r['torch']}, {r['date']}: the reference model, the `tiny` fine-tuning recipe over "
             f"{r['steps']:,} steps (lr {r['lr']:g}, linear decay), seed {r['seed']}, {r['seconds'] / 60:.0f} "
             "minutes" + (f", with the code of commit `{r['commit'][:7]}`" if r.get("commit") else "") + ".", "",
             f"Validation BLEU against steps (greedy, 100 validation verses; copying scores "
             f"{r['curve'][0]['val_copy_bleu']:.1f} on them): {curve}.  ",
             (f"It levelled off at step {at:,}: the {r['patience']} points after it gained less than "
              f"{r['min_gain']:g} BLEU each (best {best['val_bleu']:.1f} at step {best['step']:,})." if at is not None
              else f"It was still climbing at step {r['steps']:,} (no {r['patience']} points in a row gained less "
                   f"than {r['min_gain']:g} BLEU): the best is {best['val_bleu']:.1f}, at step {best['step']:,}."),
             "", "| test verses (500, beam 4) | BLEU | chrF |", "|---|---|---|",
             f"| fine-tuned, as the `tiny` recipe decodes | {r['bleu']:.1f} | {r['chrf']:.1f} |",
             f"| fine-tuned, trigram blocking (s2s-ft's `--forbid_duplicate_ngrams`) | "
             f"{r['bleu_trigram_blocked']:.1f} | {r['chrf_trigram_blocked']:.1f} |",
             f"| copying the source | {r['copy_bleu']:.1f} | {r['copy_chrf']:.1f} |", ""]
    top = max(r["bleu"], r["bleu_trigram_blocked"])
    lines.append(f"Goal \"beat copying the source\": {'met' if top > r['copy_bleu'] else 'MISSED'} "
                 f"(best {top:.1f} against {r['copy_bleu']:.1f}, {top - r['copy_bleu']:+.1f} BLEU).")
    return "\n".join(lines)


def ablation_block(preset: str = "cpu") -> str:
    """The committed ablation run (``results/ablation-<preset>.jsonl``): table and the paper's claim."""
    import math

    from pmlm import ablation

    rows = read_jsonl(RESULTS / f"ablation-{preset}.jsonl")
    if not rows:
        return f"The `{preset}` ablation has not been run yet (`python -m pmlm.ablation --preset {preset}`)."
    summary = ablation.summarize(rows)
    seeds = sorted({r["seed"] for r in rows})
    expected = len(ablation.ABLATION_PRESETS[preset].seeds) * (len(ablation.VARIANTS) + 1)
    lines = [f"{len(rows)} of {expected} runs recorded (seeds {', '.join(map(str, seeds))}); "
             f"`python -m pmlm.ablation --preset {preset}` runs the missing ones.", "",
             ablation.markdown_table(summary, preset).strip()]
    by = {e["variant"]: e for e in summary}
    par_rows = [e for e in summary if e["objective"] in ("par", "ae+par")]
    ratios = [e["val_par_m_acc_mean"] / e["unigram_m_acc_mean"] for e in par_rows
              if not math.isnan(e.get("val_par_m_acc_mean", math.nan)) and e.get("unigram_m_acc_mean")]
    if ratios:
        ok = all(r >= 2.5 for r in ratios) and len(ratios) == len(par_rows)
        lines += ["", f"Every PAR variant off the plateau (PAR `[M]` accuracy at least 2.5x unigram): "
                  f"{'yes' if ok else 'NO'} (lowest {min(ratios):.1f}x)."]
    if "AE" in by and "AE+PAR" in by:
        for key, name, scale, higher in (("test_acc", "sentiment accuracy", 100, True), ("bleu", "verses BLEU", 1, True),
                                         ("s2s_val_loss", "verses validation loss", 1, False)):
            a, b = by["AE+PAR"], by["AE"]
            gap = (a[f"{key}_mean"] - b[f"{key}_mean"]) * scale * (1 if higher else -1)
            spread = max((s for s in (a[f"{key}_std"], b[f"{key}_std"]) if not math.isnan(s)), default=math.nan) * scale
            if math.isnan(spread):
                verdict = "one seed, so no spread to compare the gap with: not yet evidence"
            else:
                verdict = (f"spread over seeds {spread:.2f}: " +
                           ("beats AE by more than the spread" if gap > spread else "not separated from AE"))
            lines.append(f"AE+PAR against AE on {name}: {gap:+.2f} ({'better' if gap > 0 else 'worse'}); {verdict}.  ")
    return "\n".join(lines)
