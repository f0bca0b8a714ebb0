"""Table 6 in miniature: ``python -m pmlm.ablation --preset cpu``.

The paper's claim (Table 6): pre-training with AE+PAR (UniLMv2) beats AE (BERT), PAR, AR and AE+AR
on both understanding and generation. This runner tests it at a scale a user can afford:

1. **Pre-train** each variant with the same budget (steps, batch, model, data, tokenizer) for each
   seed (:func:`pmlm.train.pretrain`)::

       variant   objective   factorization   Table 6 row
       AE        ae          block           4  ([2] - PAR: BERT's masked LM, blockwise masks)
       PAR       par         block           5  ([2] - AE)
       AE+PAR    ae+par      block           1-2 (UniLMv2)
       AR        par         token           6  ([5] - blockwise factorization)
       AE+AR     ae+par      token           3  ([2] - blockwise factorization)
       none      -           -               the control: fine-tuned from random initialisation

2. **Fine-tune** every checkpoint on both shipped tasks (:mod:`pmlm.finetune`): Rotten Tomatoes
   sentiment (test accuracy) and KJV -> WEB verse modernisation (test BLEU and chrF).
3. **Report** ``ablation.csv`` (one row per run), ``ablation.md`` (mean and standard deviation over
   seeds, per variant) in the output directory, and the figure ``figures/ablation.png``.

Choices (ours; the paper pre-trains on Wikipedia + BookCorpus and fine-tunes on SQuAD, MNLI, SST-2):

* Pre-training text: the bundled Austen novels plus the *training splits* of both tasks as plain
  text (KJV and WEB chapters as separate documents, review sentences in chunks; no label, no
  alignment, no validation or test text), documents shuffled with a fixed seed. In-domain
  unlabelled text, as Wikipedia is for SQuAD in the paper, so that pre-training can matter at all
  at this size. One tokenizer, trained once on that text, serves every run.
* Every variant keeps the relative position bias (``--no-rel-pos`` drops it for all, as the paper's
  rows 2-6 do): the comparison holds the architecture fixed either way.
* The same seed gives the same model initialisation, data order and fine-tuning sample to every
  variant; what differs is the objective.
* Finished runs are recorded in ``results.jsonl`` and skipped when the runner is started again
  (``--fresh`` starts over), so an interrupted run resumes.

Presets: ``cpu`` (the tiny model, 2,000 pre-training steps of 32 x 64 tokens per variant, 3 seeds,
half an hour to an hour per seed on 2 cores; the command line records its runs in
``results/ablation-cpu.jsonl``, which is committed, so that notebook 6 and ``--report-only`` read
them instead of re-running), ``gpu`` (the small model, 1,200 steps of 64 x 128 tokens, 3 seeds:
sized for under an hour on one GPU, an estimate not yet measured), and ``micro`` (seconds, for
tests; chosen by ``PMLM_SMOKE=1`` or ``CI``).
"""

from pmlm.ablation.presets import ABLATION_PRESETS, CONTROL, METRICS, VARIANTS, AblationPreset
from pmlm.ablation.report import markdown_table, ordering, plot, report, summarize, write_csv
from pmlm.ablation.results import append_result, read_results
from pmlm.ablation.runs import run


def main(argv: list[str] | None = None) -> None:
    from pmlm.ablation.__main__ import main as run_main
    run_main(argv)


__all__ = ["ABLATION_PRESETS", "CONTROL", "METRICS", "VARIANTS", "AblationPreset", "append_result", "main",
           "markdown_table", "ordering", "plot", "read_results", "report", "run", "summarize", "write_csv"]
