"""pmlm: UniLMv2's pseudo-masked language model (Bao et al., ICML 2020, arXiv 2002.12804).

One forward pass serves both the autoencoding (AE) and the partially autoregressive (PAR)
objective: the context keeps conventional masks ``[M]``; appended pseudo masks ``[P]`` and original
copies reuse the positions of the tokens they stand for; the attention mask lets each
factorization step see only what it may.

Modules, in reading order: :mod:`pmlm.masking` (Algorithm 1), :mod:`pmlm.layout` (pseudo masks,
position reuse), :mod:`pmlm.attention` (the mask rule table), :mod:`pmlm.collator` (batches),
:mod:`pmlm.relpos` and :mod:`pmlm.model` (the transformer), :mod:`pmlm.losses` (AE, PAR).
"""

from pmlm.attention import pmlm_attention_mask
from pmlm.collator import PMLMCollator
from pmlm.config import PRESETS, PMLMConfig
from pmlm.layout import IGNORE_INDEX, PMLMExample, build_pmlm_example
from pmlm.losses import pmlm_loss
from pmlm.masking import sample_blocks
from pmlm.model import PMLMModel
from pmlm.hf_export import export_hf, import_hf
from pmlm.pretrained import load_model, load_reference
from pmlm.unilmv2 import from_unilmv2

__version__ = "0.1.0"

__all__ = [
    "IGNORE_INDEX", "PMLMCollator", "PMLMConfig", "PMLMExample", "PMLMModel", "PRESETS",
    "build_pmlm_example", "export_hf", "from_unilmv2", "import_hf", "load_model", "load_reference", "pmlm_attention_mask", "pmlm_loss",
    "sample_blocks",
]
