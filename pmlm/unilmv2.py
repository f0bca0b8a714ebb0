"""The published UniLMv2 weights in pmlm: ``pmlm.from_unilmv2(checkpoint, config, vocab)``.

The authors released the UniLMv2 checkpoints (``unilm2-base-uncased``, ``unilm2-large-uncased``,
``unilm2-large-cased``) with their fine-tuning code, microsoft/unilm ``s2s-ft/``, not with the
pre-training code. Download the three files of a model by hand (the URLs are in s2s-ft's
``modeling.py``, ``configuration_unilm.py`` and ``tokenization_unilm.py``)::

    https://unilm.blob.core.windows.net/ckpt/unilm2-base-uncased.bin
    https://unilm.blob.core.windows.net/ckpt/unilm2-base-uncased-config.json
    https://unilm.blob.core.windows.net/ckpt/unilm2-base-uncased-vocab.txt

then ``model, tok = pmlm.from_unilmv2("unilm2-base-uncased.bin", "unilm2-base-uncased-config.json",
"unilm2-base-uncased-vocab.txt")`` gives a :class:`pmlm.PMLMModel` that fine-tuning
(``pmlm.finetune``) and pseudo-mask decoding run on.

Where each fact comes from (s2s-ft at microsoft/unilm HEAD):

* key names: ``s2s_ft/modeling.py`` (``BertEmbeddings``, ``BertSelfAttention``, ``BertModel``,
  ``BertLMPredictionHead``) and the rewrite of ``s2s_ft/convert_state_dict.py``
  (``unilm_to_hf_bert``): a checkpoint holds BERT's names, either with separate
  ``attention.self.{query,key,value}.{weight,bias}`` or with a fused
  ``attention.self.qkv_linear.weight`` (3H, H; rows q, k, v), ``q_bias`` and ``v_bias`` (stored as
  (H,) or (1, 1, H)) and *no key bias* (zero); the relative position bias is one
  ``Linear(rel_pos_bins, heads, bias=False)`` shared by all layers, ``bert.rel_pos_bias.weight``
  (``bert.encoder.rel_pos_bias.weight`` in the original files), weight (heads, bins);
* the bias: ``modeling.py`` ``relative_position_bucket`` (T5's bidirectional buckets of key
  position - query position, the function of :mod:`pmlm.relpos`), one-hot @ weight^T, computed
  once and added to the scaled scores of every layer together with the additive mask (-10000);
* the layer: BERT's post-LN layer with exact (erf) GELU, embedding LayerNorm, the MLM head dense ->
  GELU -> LayerNorm with the decoder tied to the word embeddings; LayerNorm eps from the config
  (1e-12 by default, ``configuration_unilm.py``);
* the config: a BERT config with ``rel_pos_bins`` and ``max_rel_pos``;
* the tokens (``tokenization_unilm.py``, ``utils.py``, ``decode_seq2seq.py``): BERT's WordPiece
  ``vocab.txt`` (lower-cased for the uncased models), ids unchanged; ``[CLS]`` starts the source,
  ``[SEP]`` ends source and target, ``[MASK]`` is the pseudo mask. In pmlm's terms ``[CLS]``,
  ``[SEP]`` and ``[MASK]`` serve as ``[SOS]``, ``[EOS]`` and ``[P]`` (and ``[MASK]`` as ``[M]``),
  which :func:`pmlm.tokenizer.special_ids` reads off a BERT vocabulary.

Tolerated and dropped: ``bert.pooler.*``, ``cls.seq_relationship.*``, the tied decoder
(``cls.predictions.decoder.weight`` / ``decoder_weight``), ``bert.embeddings.position_ids``. Any other
unknown key, a missing key or a shape that does not fit the config is a ValueError naming them.
Tested on synthetic checkpoints with these names and shapes against a forward written from s2s-ft's
formulas (``tests/test_unilmv2.py``); the real files cannot be fetched here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from tokenizers import Tokenizer

from pmlm.config import PMLMConfig
from pmlm.model import PMLMModel
from pmlm.model_files import load_weights, read_tensors
from pmlm.tokenizer import bert_tokenizer  # noqa: F401  (pmlm.unilmv2.bert_tokenizer, as before)

IGNORED = re.compile(r"^(bert\.pooler\..*|cls\.seq_relationship\..*|cls\.predictions\.decoder(\.weight|_weight)"
                     r"|bert\.embeddings\.position_ids)$")
LAYER = {"attention.output.dense": "attention.out", "attention.output.LayerNorm": "ln1",
         "intermediate.dense": "ffn.0", "output.dense": "ffn.2", "output.LayerNorm": "ln2"}
TOP = {"bert.embeddings.word_embeddings.weight": "token_embedding.weight",
       "bert.embeddings.position_embeddings.weight": "position_embedding.weight",
       "bert.embeddings.token_type_embeddings.weight": "segment_embedding.weight",
       "bert.embeddings.LayerNorm.weight": "embedding_ln.weight",
       "bert.embeddings.LayerNorm.bias": "embedding_ln.bias",
       "cls.predictions.transform.dense.weight": "head.transform.0.weight",
       "cls.predictions.transform.dense.bias": "head.transform.0.bias",
       "cls.predictions.transform.LayerNorm.weight": "head.transform.2.weight",
       "cls.predictions.transform.LayerNorm.bias": "head.transform.2.bias",
       "cls.predictions.bias": "head.bias"}
REL_BIAS = ("bert.rel_pos_bias.weight", "bert.encoder.rel_pos_bias.weight")


def unilmv2_config(config: dict | str | Path) -> PMLMConfig:
    """The :class:`PMLMConfig` of a UniLMv2 (BERT-style) config dict or json file."""
    if not isinstance(config, dict):
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"no UniLMv2 config at {path}: download the model's -config.json")
        config = json.loads(path.read_text())
    needed = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings"]
    missing = [k for k in needed if k not in config]
    if missing:
        raise ValueError(f"the UniLMv2 config lacks {missing}: is it a BERT/UniLM config.json?")
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"hidden_act {act!r} is not supported: pmlm's layers use exact GELU, as UniLMv2")
    return PMLMConfig(vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
                      num_layers=config["num_hidden_layers"], num_heads=config["num_attention_heads"],
                      intermediate_size=config["intermediate_size"],
                      max_positions=config["max_position_embeddings"],
                      type_vocab_size=config.get("type_vocab_size", 2),
                      rel_pos_buckets=config.get("rel_pos_bins", 0), max_rel_distance=config.get("max_rel_pos", 128),
                      layer_norm_eps=config.get("layer_norm_eps", 1e-12),
                      dropout=config.get("hidden_dropout_prob", 0.1),
                      attention_dropout=config.get("attention_probs_dropout_prob", 0.1))


def convert_state_dict(state: dict[str, torch.Tensor], config: PMLMConfig) -> dict[str, torch.Tensor]:
    """UniLMv2 keys (either layout) -> :class:`PMLMModel` keys; unknown keys are a ValueError."""
    out, unknown = {}, []
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if IGNORED.match(key):
            continue
        if key in TOP:
            out[TOP[key]] = value
        elif key in REL_BIAS:
            out["rel_bias.table.weight"] = value.t()  # (heads, bins) -> (bins, heads): a lookup table
        elif m := re.match(r"^bert\.encoder\.layer\.(\d+)\.(.+)$", key):
            i, rest = int(m.group(1)), m.group(2)
            name = next((LAYER[p] + rest[len(p):] for p in LAYER if rest.startswith(p + ".")), None)
            if name is not None:
                out[f"layers.{i}.{name}"] = value
            elif rest.startswith("attention.self."):
                layers.setdefault(i, {})[rest.removeprefix("attention.self.")] = value
            else:
                unknown.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown keys in the UniLMv2 checkpoint: {sorted(unknown)[:8]}"
                         f"{' ...' if len(unknown) > 8 else ''}")
    H = config.hidden_size
    for i, parts in sorted(layers.items()):
        if "qkv_linear.weight" in parts:  # the fused layout: no key bias
            missing = [k for k in ("q_bias", "v_bias") if k not in parts]
            if missing:
                raise ValueError(f"layer {i} has qkv_linear.weight but no {missing}")
            weight = parts["qkv_linear.weight"]
            bias = torch.cat([parts["q_bias"].reshape(-1), torch.zeros(H, dtype=weight.dtype),
                              parts["v_bias"].reshape(-1)])
            extra = set(parts) - {"qkv_linear.weight", "q_bias", "v_bias"}
        else:
            names = [f"{p}.{w}" for p in ("query", "key", "value") for w in ("weight", "bias")]
            missing = [n for n in names if n not in parts]
            if missing:
                raise ValueError(f"layer {i} lacks attention.self.{missing[0]} (and {len(missing) - 1} more)")
            weight = torch.cat([parts[f"{p}.weight"] for p in ("query", "key", "value")])
            bias = torch.cat([parts[f"{p}.bias"] for p in ("query", "key", "value")])
            extra = set(parts) - set(names)
        if extra:
            raise ValueError(f"unknown keys in layer {i}: {sorted('attention.self.' + e for e in extra)}")
        out[f"layers.{i}.attention.qkv.weight"], out[f"layers.{i}.attention.qkv.bias"] = weight, bias
    return out


def read_state(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    path = Path(checkpoint)
    if path.suffix == ".safetensors":
        return read_tensors(path, "download the model's checkpoint file")
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}: download the model's .bin file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} cannot be read as a state dict: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def from_unilmv2(checkpoint: str | Path, config: str | Path | dict, vocab: str | Path, *,
                 lowercase: bool = True) -> tuple[PMLMModel, Tokenizer]:
    """``(model, tokenizer)`` of a published UniLMv2 checkpoint (``lowercase=False`` for the cased one)."""
    pmlm_config = unilmv2_config(config)
    model = PMLMModel(pmlm_config)
    load_weights(model, {k: v.float() for k, v in convert_state_dict(read_state(checkpoint), pmlm_config).items()},
                 f"{checkpoint} (converted from the UniLMv2 key names)")
    tok = bert_tokenizer(vocab, lowercase)
    if tok.get_vocab_size() != pmlm_config.vocab_size:
        raise ValueError(f"{vocab} has {tok.get_vocab_size()} pieces but the config says vocab_size="
                         f"{pmlm_config.vocab_size}: files of different models")
    return model.eval(), tok
