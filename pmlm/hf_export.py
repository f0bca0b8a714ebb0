"""Hugging Face transformers: ``export_hf`` writes a directory that ``transformers`` loads, ``import_hf``
reads one back into pmlm.

    pmlm.export_hf(model, tok, "hf/austen")
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline
    hf = AutoModelForMaskedLM.from_pretrained("hf/austen", trust_remote_code=True)
    fill = pipeline("fill-mask", model=hf, tokenizer=AutoTokenizer.from_pretrained("hf/austen"))

The directory holds ``config.json`` (the model's fields, ``model_type: pmlm`` and an ``auto_map``
naming the two classes of the modeling file), ``modeling_pmlm.py`` (one standalone file with both
the config and the model class, :mod:`pmlm.hf_remote.modeling_pmlm`, that needs ``torch`` and ``transformers``
only), ``model.safetensors`` (the very tensors of :meth:`pmlm.PMLMModel.save_pretrained`: the
modules have the same names) and the tokenizer as ``tokenizer.json`` with ``tokenizer_config.json``
(the tokens in the roles of ``[SOS]``/``[EOS]`` as BERT's ``cls``/``sep`` tokens, ``[MASK]`` as the
mask token). Nothing here
imports ``transformers``: it stays an optional extra, and ``tests/test_hf_export.py`` checks the
round trip with it (the same logits, the fill-mask pipeline, and the way back).

Choices:

* The exported model computes with SDPA and no dropout (it is for inference and fine-tuning in
  transformers' own loops); attention dropout and the fast paths of training (context split,
  labelled rows only, FlexAttention) stay in pmlm.
* Whole or nothing, and never over someone else's files: the directory is written like a model
  directory (:func:`pmlm.model_files.write_directory`: a temporary sibling swapped into place), and
  its weights' metadata says that ``export_hf`` wrote it. A folder that is not empty and that
  ``export_hf`` did not write (a run directory, a folder with a ``config.json`` of another library)
  is refused; ``force=True`` writes the export's files into it and leaves every other file alone.
  An earlier export in the same folder is replaced, files beside it kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

from pmlm.config import PMLMConfig
from pmlm.model import PMLMModel
from pmlm.model_files import (CONFIG_FILE, EXPORT_FILES, FILES_KEY, TIED, WEIGHTS_FILE, WRITER_KEY, load_weights, read_json,
                              read_weights, write_directory, written_files)
from pmlm.tokenizer import TOKENIZER_FILE, load_tokenizer, special_ids

REMOTE = Path(__file__).resolve().parent / "hf_remote" / "modeling_pmlm.py"
HF_FIELDS = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_positions",
             "type_vocab_size", "rel_pos_buckets", "max_rel_distance", "layer_norm_eps", "norm")


def export_hf(model: PMLMModel, tokenizer: Tokenizer, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write ``model`` and ``tokenizer`` as a transformers directory (``trust_remote_code=True``).

    ``out_dir`` must be new, empty or an earlier export; ``force=True`` writes into another folder,
    replacing only the files an export consists of (:data:`EXPORT_FILES`)."""
    from safetensors.torch import save

    out = Path(out_dir)
    if out.is_dir() and not force:
        present = sorted(p.name for p in out.iterdir())
        _, writer = written_files(out)
        if present and writer != "export_hf":
            raise ValueError(f"{out} is not empty and was not written by export_hf (it holds "
                             f"{', '.join(present[:4])}{', ...' if len(present) > 4 else ''}); choose an empty "
                             "or new folder, or pass force=True to write the export's files there")
    c = model.config
    config = {"model_type": "pmlm", "architectures": ["PMLMForMaskedLM"],
              "auto_map": {"AutoConfig": "modeling_pmlm.PMLMHFConfig",
                           "AutoModelForMaskedLM": "modeling_pmlm.PMLMForMaskedLM"},
              **{name: getattr(c, name) for name in HF_FIELDS},
              "pmlm_config": c.to_dict(), "pad_token_id": tokenizer.token_to_id("[PAD]")}
    ids = special_ids(tokenizer)  # pmlm's own tokens, or a BERT vocabulary's [CLS]/[SEP]/[MASK]
    name = tokenizer.id_to_token
    special = {"pad_token": name(ids["pad"]), "unk_token": name(ids["unk"]), "cls_token": name(ids["sos"]),
               "sep_token": name(ids["eos"]), "mask_token": name(ids["mask"])}
    extra = {"additional_special_tokens": [name(ids["pseudo"])]} if ids["pseudo"] != ids["mask"] else {}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in TIED}
    files = {CONFIG_FILE: json.dumps(config, indent=2) + "\n",
             "modeling_pmlm.py": REMOTE.read_bytes(),
             TOKENIZER_FILE: tokenizer.to_str(),
             "tokenizer_config.json": json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                  "model_max_length": c.max_positions, **special, **extra},
                                                 indent=2) + "\n",
             "special_tokens_map.json": json.dumps({**special, **extra}, indent=2) + "\n",
             WEIGHTS_FILE: save(tensors, metadata={"format": "pt", "model_type": "pmlm",  # last: the commit
                                                   FILES_KEY: json.dumps(sorted(EXPORT_FILES)),
                                                   WRITER_KEY: "export_hf"})}
    return write_directory(out, files, "export_hf")


def import_hf(directory: str | Path) -> tuple[PMLMModel, Tokenizer]:
    """``(model, tokenizer)`` from a directory written by :func:`export_hf` (transformers not needed)."""
    directory = Path(directory)
    data = read_json(directory / CONFIG_FILE, "not a directory written by pmlm.export_hf")
    if "pmlm_config" not in data:
        raise ValueError(f"{directory / CONFIG_FILE} has no pmlm_config: it was not written by pmlm.export_hf")
    try:
        config = PMLMConfig.from_dict(data["pmlm_config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{directory / CONFIG_FILE} holds an invalid pmlm_config: {err}") from None
    model = PMLMModel(config)
    load_weights(model, read_weights(directory), str(directory / WEIGHTS_FILE))
    tok = load_tokenizer(directory / TOKENIZER_FILE)
    if tok.get_vocab_size() != config.vocab_size:
        raise ValueError(f"the tokenizer in {directory} has {tok.get_vocab_size()} entries, the model "
                         f"{config.vocab_size}: they come from different models")
    return model.eval(), tok
