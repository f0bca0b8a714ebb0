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
unknown key, a missing key, a shape that does not fit the config, a weight of an integer or bool
dtype or one holding NaN or infinity is a ValueError naming the keys *as the file names them*
(``bert.rel_pos_bias.weight``, not pmlm's ``rel_bias.table.weight``): the user can look them up in
their file, not in pmlm's modules. A config that is not JSON is one ValueError naming its line.

:func:`load_unilmv2` takes what a user has after the download: a directory holding
``pytorch_model.bin``, ``config.json`` and ``vocab.txt`` (or the published names,
``unilm2-base-uncased.bin`` with ``-config.json`` and ``-vocab.txt`` beside it), or the ``.bin``
itself with the other two beside it; a missing one is a ValueError naming it and where to get it.
``lowercase`` is read off the vocabulary when not given: the cased model's has capitalised pieces
(``The``), the uncased one's none.

Tested on synthetic checkpoints with these names and shapes against a forward written from s2s-ft's
formulas (``tests/test_unilmv2.py``, ``tests/test_seq2seq_unilmv2.py``); the real files cannot be
fetched here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from tokenizers import Tokenizer

from pmlm.config import PMLMConfig
from pmlm.model import PMLMModel
from pmlm.model_files import TIED, MissingModelFileError, load_weights, read_tensors
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
        config = read_config_json(Path(config))
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


def read_config_json(path: Path) -> dict:
    """The dict of a UniLMv2 ``config.json``; one ValueError naming the file (and line) otherwise."""
    if not path.is_file():
        raise ValueError(f"no UniLMv2 config at {path}: download the model's -config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: byte 0x{err.object[err.start]:02x} is not UTF-8 text: not a config.json; "
                         "download the model's -config.json again") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno}): "
                         "download the model's -config.json again") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a JSON {type(config).__name__}, not the object of a BERT config: "
                         "download the model's -config.json again")
    return config


def convert_state_dict(state: dict[str, torch.Tensor], config: PMLMConfig) -> dict[str, torch.Tensor]:
    """UniLMv2 keys (either layout) -> :class:`PMLMModel` keys; unknown keys are a ValueError."""
    return _convert(state, config)[0]


def _convert(state: dict[str, torch.Tensor], config: PMLMConfig) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The converted tensors, and for each pmlm key the file's key(s) it came from (for messages)."""
    out, origin, unknown = {}, {}, []
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if IGNORED.match(key):
            continue
        if key in TOP:
            out[TOP[key]], origin[TOP[key]] = value, key
        elif key in REL_BIAS:
            # (heads, bins) -> (bins, heads): a lookup table
            out["rel_bias.table.weight"], origin["rel_bias.table.weight"] = value.t(), key
        elif m := re.match(r"^bert\.encoder\.layer\.(\d+)\.(.+)$", key):
            i, rest = int(m.group(1)), m.group(2)
            name = next((LAYER[p] + rest[len(p):] for p in LAYER if rest.startswith(p + ".")), None)
            if name is not None:
                out[f"layers.{i}.{name}"], origin[f"layers.{i}.{name}"] = value, key
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
        fused = "qkv_linear.weight" in parts
        p = f"bert.encoder.layer.{i}.attention.self."
        origin[f"layers.{i}.attention.qkv.weight"] = p + ("qkv_linear.weight" if fused else "{query,key,value}.weight")
        origin[f"layers.{i}.attention.qkv.bias"] = p + ("{q_bias,v_bias}" if fused else "{query,key,value}.bias")
    return out, origin


def file_key(key: str) -> str:
    """The name a UniLMv2 file gives pmlm's ``key`` (for a key the file lacks)."""
    inverse = {v: k for k, v in TOP.items()}
    if key in inverse:
        return inverse[key]
    if key == "rel_bias.table.weight":
        return REL_BIAS[0]
    m = re.match(r"^layers\.(\d+)\.(.+)$", key)
    if m is None:
        return key
    i, rest = m.groups()
    if rest.startswith("attention.qkv."):
        return f"bert.encoder.layer.{i}.attention.self.{{query,key,value}}.{rest.rsplit('.', 1)[1]}"
    ours = next((p for p in LAYER.items() if rest.startswith(p[1] + ".")), None)
    return f"bert.encoder.layer.{i}.{ours[0]}{rest[len(ours[1]):]}" if ours else key


def check_state(model: PMLMModel, tensors: dict[str, torch.Tensor], names: dict[str, str], where: str) -> None:
    """Every problem of the converted ``tensors`` for ``model``, named as the file names the keys:
    missing, unexpected, of another shape, not floating point, or not finite."""
    expected = {k: v.shape for k, v in model.state_dict().items() if k not in TIED}
    name = lambda k: names.get(k) or file_key(k)  # noqa: E731
    missing = sorted(name(k) for k in set(expected) - set(tensors))
    unexpected = sorted(name(k) for k in set(tensors) - set(expected))
    shapes = [f"{name(k)}: file {tuple(tensors[k].shape)} vs config {tuple(expected[k])}"
              for k in sorted(set(expected) & set(tensors)) if tensors[k].shape != expected[k]]
    problems = ([f"missing keys {missing}"] if missing else []) + \
        ([f"keys the config has no place for {unexpected}"] if unexpected else []) + \
        ([f"shapes that do not fit the config: {'; '.join(shapes)}"] if shapes else [])
    if problems:
        raise ValueError(f"the weights in {where} do not fit its config: " + "; ".join(problems))
    dtypes = [f"{name(k)} ({str(t.dtype).removeprefix('torch.')})" for k, t in sorted(tensors.items())
              if not t.is_floating_point()]
    if dtypes:
        raise ValueError(f"the weights in {where} are not floating point: {', '.join(dtypes[:5])}"
                         f"{f' and {len(dtypes) - 5} more' if len(dtypes) > 5 else ''}; a UniLMv2 checkpoint "
                         "holds float32 or float16 weights: download the .bin again")
    bad = [name(k) for k, t in sorted(tensors.items()) if not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"the weights in {where} hold NaN or infinite values ({', '.join(bad[:5])}"
                         f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}): the file is damaged; "
                         "download the .bin again")


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
    other = [f"{k} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if other:
        raise ValueError(f"{path} holds values that are not tensors under {', '.join(map(str, other[:5]))}: "
                         "not a UniLMv2 state dict")
    return state


def from_unilmv2(checkpoint: str | Path, config: str | Path | dict, vocab: str | Path, *,
                 lowercase: bool | None = None) -> tuple[PMLMModel, Tokenizer]:
    """``(model, tokenizer)`` of a published UniLMv2 checkpoint; ``lowercase`` None reads it off the
    vocabulary (:func:`vocab_is_cased`), True for the uncased models, False for the cased one."""
    pmlm_config = unilmv2_config(config)
    model = PMLMModel(pmlm_config)
    tensors, names = _convert(read_state(checkpoint), pmlm_config)
    check_state(model, tensors, names, str(checkpoint))  # before .float() hides an integer tensor
    load_weights(model, {k: v.float() for k, v in tensors.items()}, f"{checkpoint} (converted from the UniLMv2 key names)")
    tok = bert_tokenizer(vocab, not vocab_is_cased(vocab) if lowercase is None else lowercase)
    if tok.get_vocab_size() != pmlm_config.vocab_size:
        raise ValueError(f"{vocab} has {tok.get_vocab_size()} pieces but the config says vocab_size="
                         f"{pmlm_config.vocab_size}: files of different models")
    return model.eval(), tok


def vocab_is_cased(vocab: str | Path) -> bool:
    """Whether a BERT ``vocab.txt`` is a cased one: more than 1% of its pieces (specials aside) hold a
    capital letter (the cased vocabulary has thousands, ``The``, ``London``; the uncased none)."""
    try:
        pieces = [p for p in Path(vocab).read_text(encoding="utf-8").split("\n") if p and not p.startswith("[")]
    except (OSError, UnicodeDecodeError):
        return False  # bert_tokenizer names what is wrong with the file
    return sum(any(c.isupper() for c in p) for p in pieces) > 0.01 * max(1, len(pieces))


BLOB = "https://unilm.blob.core.windows.net/ckpt/"
# the three files of a model: generic name, suffix of the published name, what it is
PARTS = {"config": ("config.json", "-config.json", "its config"),
         "vocab": ("vocab.txt", "-vocab.txt", "its WordPiece vocabulary")}
WEIGHTS = "pytorch_model.bin"


def looks_like_unilmv2(path: str | Path) -> bool:
    """Whether ``path`` is meant as a UniLMv2 checkpoint: a ``.bin``, or a directory with a ``.bin``,
    a ``vocab.txt`` or a BERT-style ``config.json``, and none of pmlm's own model files."""
    path = Path(path)
    if path.suffix == ".bin":
        return True  # there or not: unilmv2_files says what is missing
    if not path.is_dir() or any((path / n).exists() for n in ("checkpoint.pt", "model.safetensors")):
        return False
    if any(path.glob("*.bin")) or any(path.glob("*vocab.txt")) or any(path.glob("*-config.json")):
        return True
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "num_hidden_layers" in config and "pmlm_config" not in config


def unilmv2_files(path: str | Path) -> tuple[Path, Path, Path]:
    """(weights, config, vocabulary) of a UniLMv2 checkpoint given as a directory or as its ``.bin``.

    In a directory: ``pytorch_model.bin`` or its one ``.bin``; beside the weights ``config.json``
    and ``vocab.txt``, or the published names ``<model>-config.json`` and ``<model>-vocab.txt``. A
    file that is not there is a ValueError naming it and the address to download it from.
    """
    path = Path(path)
    if path.is_file():
        folder, weights = path.parent, path
    elif path.is_dir():
        folder = path
        bins = sorted(p for p in path.glob("*.bin") if p.is_file())
        weights = path / WEIGHTS if (path / WEIGHTS).is_file() else (bins[0] if len(bins) == 1 else None)
        if weights is None and len(bins) > 1:
            raise ValueError(f"{path} holds {len(bins)} .bin files ({', '.join(p.name for p in bins[:4])}): "
                             "point --pretrained at the one to load")
    else:
        raise MissingModelFileError(f"no UniLMv2 checkpoint at {path}: give the directory of its three files "
                                    f"or its .bin")
    stem = weights.stem if weights is not None and weights.name != WEIGHTS else None
    model = stem or "unilm2-base-uncased"
    if weights is None:
        raise MissingModelFileError(f"{folder} holds no {WEIGHTS}, the UniLMv2 weights: download "
                                    f"{BLOB}{model}.bin into it (as {WEIGHTS} or under its own name)")
    found = []
    for generic, suffix, what in PARTS.values():
        candidates = ([folder / f"{stem}{suffix}"] if stem else []) + [folder / generic]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            raise MissingModelFileError(f"{folder} holds no {' or '.join(p.name for p in candidates)}, {what} "
                                        f"of the UniLMv2 weights {weights.name}: download {BLOB}{model}{suffix} "
                                        f"into {folder} as {generic}")
        found.append(hit)
    return weights, found[0], found[1]


def load_unilmv2(path: str | Path, *, lowercase: bool | None = None) -> tuple[PMLMModel, Tokenizer]:
    """:func:`from_unilmv2` of the three files that :func:`unilmv2_files` finds at ``path``."""
    weights, config, vocab = unilmv2_files(path)
    return from_unilmv2(weights, config, vocab, lowercase=lowercase)
