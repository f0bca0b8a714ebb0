"""Pre-training data: documents in, packed ``[SOS] S1 [EOS] S2 [EOS]`` examples out (section 2.2).

The paper pre-trains on Wikipedia and BookCorpus (160 GB with the RoBERTa corpora) with examples
``[SOS] S1 [EOS] S2 [EOS]`` where S1 and S2 are *contiguous* text, up to 512 tokens. One idea a
file:

* :mod:`pmlm.data.sources` - a source (bundled corpus, local files, a saved or hub dataset) in,
  documents (lists of paragraphs) out, streamed;
* :mod:`pmlm.data.split` - validation holds out whole documents, drawn with a seed;
* :mod:`pmlm.data.packing` - a document's tokens cut into examples at sentence ends;
* :mod:`pmlm.data.corpus` - all of it in memory for small corpora (:func:`prepare_corpus`);
* :mod:`pmlm.data.shards` - the same examples from a prepared directory of memory-mapped shards,
  for corpora of any size (written by :mod:`pmlm.prepare`);
* :mod:`pmlm.data.unigram` - the unigram baseline every evaluation is compared with.
"""

from pmlm.data.corpus import EXTRA_TEXT, Corpus, prepare_corpus, task_training_documents
from pmlm.data.packing import (CLOSING_QUOTES, MIN_TOKENS, SENTENCE_ENDS, Boundaries, PackedDataset,
                               boundary_ids, cut_array, cut_points, last_in, nearest_in, pack_document,
                               pack_documents, pack_spans, word_starts)
from pmlm.data.sources import (CHUNK_CHARS, FILE_BUILDERS, builder_for, bundled_austen_file, describe,
                               group_rows, iter_documents, load_documents, local_files, split_paragraphs)
from pmlm.data.split import contiguous_chunks, split_documents, validation_indices
from pmlm.data.unigram import token_counts, unigram_baseline, unigram_log_probs

__all__ = ["CHUNK_CHARS", "CLOSING_QUOTES", "EXTRA_TEXT", "FILE_BUILDERS", "MIN_TOKENS", "SENTENCE_ENDS",
           "Boundaries", "Corpus", "PackedDataset", "boundary_ids", "builder_for", "bundled_austen_file",
           "contiguous_chunks", "cut_array", "cut_points", "describe", "group_rows", "iter_documents",
           "last_in", "load_documents", "local_files", "nearest_in", "pack_document", "pack_documents",
           "pack_spans", "prepare_corpus", "split_documents", "split_paragraphs", "task_training_documents",
           "token_counts", "unigram_baseline", "unigram_log_probs", "validation_indices", "word_starts"]
