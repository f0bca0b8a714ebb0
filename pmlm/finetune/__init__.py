"""Fine-tuning a pre-trained PMLM (section 3.4 of the paper).

* :mod:`pmlm.finetune.data`: the two tasks shipped with the project and their fixed splits
  (Rotten Tomatoes sentiment; King James -> World English Bible verses, held out by book).
* :mod:`pmlm.finetune.classify`: NLU, ``[SOS] text [EOS]`` and a classifier on the top ``[SOS]`` state.
* :mod:`pmlm.finetune.seq2seq`: NLG with pseudo masks, ``[SOS] source [EOS] target [EOS]``.
* :mod:`pmlm.finetune.pairs`: your own pairs, s2s-ft's JSON lines or TSV (``--data``).
* :mod:`pmlm.finetune.loop`: the steps: torchrun, gradient accumulation, bf16, checkpoints, resume.
* :mod:`pmlm.finetune.decoding`: greedy and beam search with a key/value cache.
* ``python -m pmlm.finetune classify|seq2seq --pretrained RUN_DIR``: the command line
  (``--pretrained`` also takes a published UniLMv2 checkpoint, :mod:`pmlm.unilmv2`).
"""

from pmlm.finetune.classify import ClassifyConfig, PMLMClassifier, finetune_classify
from pmlm.finetune.decoding import DecodeConfig, beam_search, generate
from pmlm.finetune.seq2seq import Seq2SeqConfig, finetune_seq2seq, seq2seq_example, seq2seq_loss

__all__ = ["ClassifyConfig", "DecodeConfig", "PMLMClassifier", "Seq2SeqConfig", "beam_search",
           "finetune_classify", "finetune_seq2seq", "generate", "seq2seq_example", "seq2seq_loss"]
