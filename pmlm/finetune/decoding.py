r"""Decoding a fine-tuned PMLM sequence-to-sequence model: greedy and beam search, with a key/value cache.

The model predicts target token :math:`y_t` from the state of a pseudo mask ``[P]`` at position
:math:`n + t - 1` (``n`` source tokens ``[SOS] s [EOS]``, positions from 0) that sees the source
and the real target tokens :math:`y_{<t}`, exactly as in fine-tuning (:mod:`pmlm.finetune.seq2seq`).
As in s2s-ft's decoder, step t feeds two new tokens::

    step 1:            [P]@n                        (the source is already in the cache)
    step t > 1:   y_{t-1}@n+t-2   [P]@n+t-1

The real token sees the cache and itself, the ``[P]`` the cache, ``y_{t-1}`` and itself. Then only the
real token's keys and values join the cache; the ``[P]``'s are dropped. This is exact, not an
approximation: in the PMLM mask (step ids: source 0, real ``y_j`` +j, its ``[P]`` -j) no source or
real token ever attends to a later token, so their states never change once computed. Each step
therefore costs two new positions attending to the cache, not a pass over the whole prefix;
``use_cache=False`` recomputes the whole prefix at every step with :func:`pmlm.pmlm_attention_mask`,
the straightforward reference that ``tests/test_decoding.py`` compares against.

Beam search (fairseq's bookkeeping): each step takes the best ``2K`` of the ``K x V``
continuations by summed log-probability; an ``[EOS]`` among the first ``K`` of them finishes a
hypothesis, scored with the GNMT length penalty

.. math::  \text{score} = \frac{\log p(y)}{\left((5 + |y|) / 6\right)^{\alpha}}

(:math:`|y|` counts ``[EOS]``); the first ``K`` non-``[EOS]`` continuations go on. A source is done
once it has ``K`` finished hypotheses. Hence beam size 1 is greedy search, token for token, for any
:math:`\alpha`. Constraints: ``[EOS]`` is forbidden until ``min_length`` tokens exist; with
``no_repeat_ngram_size = n`` a token that would repeat an n-gram of the hypothesis is forbidden
(trigram blocking: n = 3); special tokens other than ``[EOS]`` are never generated.

The constraints and the length penalty are s2s-ft's (``decode_seq2seq.py``, ``BertForSeq2SeqDecoder``
in ``s2s_ft/modeling_decoding.py``): ``--min_len`` forbids ``[EOS]`` at steps ``t <= min_len``;
``--forbid_duplicate_ngrams`` with ``--ngram_size n`` bans, after a hypothesis ending in the n-1
tokens ``w``, every token that followed ``w`` earlier in it; ``--forbid_ignore_word`` lists tokens
(``forbid_ignore_ids`` here) whose n-grams may repeat: nothing is banned after a ``w`` that holds
one of them, and none of them is ever banned (``"."`` lets sentences end alike); the final score is
``log p / ((5 + t) / 6) ** length_penalty``. Where this module differs: s2s-ft's beam size 1 skips
``min_len`` and n-gram blocking (its greedy loop has neither), here they hold for every beam size;
s2s-ft forbids with a score of -10000, here with -inf; and the beam's bookkeeping is fairseq's, not
s2s-ft's (which keeps finished hypotheses in the beam and picks the best at the end).

Batches: :func:`generate` sorts the sources by length, longest first (as ``decode_seq2seq.py``
does), decodes ``batch_size`` of them at a time, so that a batch holds little padding and the
memory peak shows in the first batch, and returns the outputs in the order of the input. A source's
output does not depend on the batch it shares: padding is masked out of every attention (only
float rounding differs with the padded shapes; ``tests/test_decoding.py`` checks the tokens in
float64).

Lengths: ``max_length`` counts generated tokens, ``[EOS]`` included. A hypothesis also stops when
the next position would pass the model's ``max_positions``; hypotheses that stop without ``[EOS]``
are finished as they are. A source that leaves no position for the target is a ValueError.

Memory: a beam of K over B sources keeps B x K hypothesis rows, each with its V log-probabilities
(a few float32 copies a step) and its key/value cache; :func:`check_decode_memory` refuses, before
any work, a beam that would not fit in the memory free on the device, and names the widest that
would (``--beam 100000`` otherwise grows until the system kills the process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pmlm.attention import pmlm_attention_mask
from pmlm.finetune.common import pad_ids
from pmlm.model import PMLMModel

NEG_INF = float("-inf")


@dataclass
class DecodeConfig:
    max_length: int = 64  # generated tokens, [EOS] included
    min_length: int = 0  # [EOS] is forbidden before this many tokens
    beam_size: int = 1  # 1 = greedy
    length_penalty: float = 1.0  # alpha of ((5 + len) / 6) ** alpha; 0 ranks by plain log-probability
    no_repeat_ngram_size: int = 0  # 3 = trigram blocking; 0 = off
    use_cache: bool = True  # False recomputes the whole prefix every step (the reference)
    batch_size: int = 32  # sources decoded together
    forbid_ignore_ids: tuple[int, ...] = ()  # tokens whose n-grams may repeat (s2s-ft: "." in its examples)

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {self.max_length}")
        if self.min_length < 0 or self.beam_size < 1 or self.no_repeat_ngram_size < 0 or self.batch_size < 1:
            raise ValueError("min_length and no_repeat_ngram_size must be >= 0, beam_size and batch_size >= 1")
        self.forbid_ignore_ids = tuple(int(i) for i in self.forbid_ignore_ids)  # a list once read from JSON


def decode_bytes(model: PMLMModel, cfg: DecodeConfig, n_sources: int, source_len: int) -> int:
    """Bytes one batch of decoding holds at its peak, roughly: per hypothesis row, four float32
    copies of the V log-probabilities (logits, log-softmax, the CPU copy, the candidates) and the
    key/value cache of every layer over source and target, twice (a reorder copies it)."""
    c = model.config
    rows = min(cfg.batch_size, max(1, n_sources)) * cfg.beam_size
    positions = min(source_len + cfg.max_length, c.max_positions)
    element = next(model.parameters()).element_size()
    per_row = 4 * 4 * c.vocab_size + 2 * 2 * c.num_layers * positions * c.hidden_size * element
    return rows * per_row


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_decode_memory(model: PMLMModel, cfg: DecodeConfig, n_sources: int, source_len: int,
                        free: int | None = None) -> None:
    """A ValueError, before any work, if decoding with ``cfg`` would not fit in the memory free on
    the model's device (``free`` bytes; default :func:`pmlm.machine.available_memory`)."""
    from pmlm.machine import available_memory

    device = next(model.parameters()).device
    free = available_memory(device) if free is None else free
    need = decode_bytes(model, cfg, n_sources, source_len)
    budget = int(0.8 * free) if free is not None else None  # the rest for the model and everything else
    if budget is None or need <= budget:
        return
    per_beam = need // cfg.beam_size
    widest = budget // per_beam
    batch = min(cfg.batch_size, max(1, n_sources))
    advice = (f"use a beam of at most {widest}" if widest >= 1 else
              f"even a beam of 1 does not fit {batch} sources at a time: decode fewer at once")
    raise ValueError(f"beam {cfg.beam_size} would need about {_gib(need)} to decode {batch} source"
                     f"{'s' if batch > 1 else ''} at a time ({batch * cfg.beam_size:,} hypotheses, each with "
                     f"{model.config.vocab_size:,} log-probabilities and a key/value cache), more than the "
                     f"{_gib(free)} free on {device.type}: {advice}")


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's ((5 + length) / 6) ** alpha."""
    return ((5.0 + length) / 6.0) ** alpha


def banned_ngram_tokens(tokens: list[int], n: int, ignore: set[int] | tuple[int, ...] = ()) -> list[int]:
    """Tokens that would complete an n-gram already in ``tokens`` (e.g. n=2, [a b a] bans b).

    ``ignore`` (s2s-ft's ``forbid_ignore_set``): an n-gram that holds one of these tokens may
    repeat. Nothing is banned when the last n-1 tokens hold one, and none of them is ever banned:
    n=2, ignore {.}: [a . a] bans nothing ("a ." may repeat), [. a .] bans nothing (". a" may).
    """
    if n <= 0 or len(tokens) < n - 1:
        return []
    prefix = tuple(tokens[len(tokens) - n + 1:]) if n > 1 else ()
    if any(t in ignore for t in prefix):
        return []
    return [tokens[i + n - 1] for i in range(len(tokens) - n + 1)
            if tuple(tokens[i:i + n - 1]) == prefix and tokens[i + n - 1] not in ignore]


def cached_step_inputs(prev: torch.Tensor | None, start: torch.Tensor, t: int, pseudo_id: int,
                       key_valid: torch.Tensor, max_positions: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """What step t of cached pseudo-mask decoding feeds the model (section 3.4; s2s-ft's decoder).

    The cache holds the keys and values of the source and of ``y_1 .. y_{t-2}``, whose states never
    change (no source or real target token attends a later one). Step t adds the real ``y_{t-1}``
    (none at t = 1) at position ``start + t - 2`` and a pseudo mask ``[P]`` at ``start + t - 1``,
    whose top state predicts ``y_t``: the real token sees the cache and itself, the ``[P]`` the
    cache, ``y_{t-1}`` and itself (the fine-tuning mask of :mod:`pmlm.finetune.seq2seq`).

    Args:
        prev: (R,) long, ``y_{t-1}`` of each hypothesis row, or None at t = 1.
        start: (R,) long, position of the first target token (the source length with [SOS]/[EOS]).
        t: the step, from 1.
        pseudo_id: the id of ``[P]``.
        key_valid: (R, P) bool, False where a cached key is source padding.
        max_positions: positions are clamped below it (only rows already finished reach it).

    Returns:
        ``new_ids`` (R, T) and ``new_pos`` (R, T) with T = 1 at t = 1, else 2 (``y_{t-1}``, ``[P]``);
        ``mask`` (R, T, P + T) bool, True = may attend, over the cached keys then the new tokens;
        ``keep``, how many of the new tokens (the first ``keep``) join the cache: the real token
        only, never the ``[P]``.
    """
    ### BEGIN SOLUTION
    R, P = key_valid.shape
    dev = key_valid.device
    pos_p = (start + t - 1).clamp(max=max_positions - 1)  # (R,) position of the [P]
    pseudo = torch.full((R, 1), pseudo_id, dtype=torch.long, device=dev)  # (R, 1)
    if prev is None:
        new_ids, new_pos, keep = pseudo, pos_p.unsqueeze(1), 0  # (R, 1), (R, 1)
        new_mask = torch.ones(1, 1, dtype=torch.bool, device=dev)  # the [P] sees itself
    else:
        new_ids = torch.cat([prev.view(R, 1).long(), pseudo], 1)  # (R, 2): y_{t-1}, [P]
        new_pos = torch.stack([(pos_p - 1).clamp(min=0), pos_p], 1)  # (R, 2)
        new_mask = torch.tensor([[True, False], [True, True]], device=dev)  # real: itself; [P]: y_{t-1}, itself
        keep = 1
    T = new_ids.shape[1]
    mask = torch.cat([key_valid.unsqueeze(1).expand(R, T, P), new_mask.expand(R, T, T)], 2)  # (R, T, P + T)
    ### END SOLUTION
    return new_ids, new_pos, mask, keep


class CachedStepper:
    """Next-token log-probs for R = B x K hypothesis rows, one real token and one ``[P]`` per step."""

    def __init__(self, model: PMLMModel, sources: list[list[int]], ids: dict[str, int], rows_per_source: int):
        self.model, self.ids = model, ids
        self.max_pos = model.config.max_positions
        self.device = dev = next(model.parameters()).device
        src, valid = (t.to(dev) for t in pad_ids(sources, ids["pad"]))  # (B, n)
        B, n = src.shape
        mask = pmlm_attention_mask(torch.zeros_like(src), valid)  # (B, n, n): source is bidirectional
        _, cache = model.encode_step(src, torch.arange(n, device=dev).expand(B, n), mask, torch.zeros_like(src))
        rows = torch.arange(B, device=dev).repeat_interleave(rows_per_source)  # (R,) source of each row
        self.cache = cache.reorder(rows)  # (R, h, n, d) per layer
        self.key_valid = valid[rows]  # (R, P): False at source padding
        self.start = valid.sum(1)[rows]  # (R,) position of the first target token
        self.t = 0

    def logprobs(self, prev: torch.Tensor | None) -> torch.Tensor:
        """Log-probabilities (R, V) of y_t, given y_{t-1} (R,) (None at t = 1)."""
        self.t += 1
        prev = None if prev is None else prev.to(self.device)
        new_ids, new_pos, mask, keep = cached_step_inputs(prev, self.start, self.t, self.ids["pseudo"],
                                                          self.key_valid, self.max_pos)
        hidden, new = self.model.encode_step(new_ids, new_pos, mask, torch.ones_like(new_ids), past=self.cache)
        if keep:  # the real token's keys and values join the cache; the [P]'s are dropped
            self.cache = self.cache.extend(new.select(slice(0, keep)))
            R = new_ids.shape[0]
            self.key_valid = torch.cat([self.key_valid, torch.ones(R, keep, dtype=torch.bool, device=self.device)], 1)
        return F.log_softmax(self.model.head(hidden[:, -1]).float(), dim=-1)  # (R, V)

    def reorder(self, rows: torch.Tensor) -> None:
        rows = rows.to(self.device)
        self.cache = self.cache.reorder(rows)
        self.key_valid, self.start = self.key_valid[rows], self.start[rows]


class RecomputeStepper:
    """The reference: every step re-encodes ``[SOS] s [EOS] y_1 .. y_{t-1} [P]`` from scratch."""

    def __init__(self, model: PMLMModel, sources: list[list[int]], ids: dict[str, int], rows_per_source: int):
        self.model, self.ids = model, ids
        self.sources = [s for s in sources for _ in range(rows_per_source)]
        self.prefix: list[list[int]] = [[] for _ in self.sources]

    def logprobs(self, prev: torch.Tensor | None) -> torch.Tensor:
        if prev is not None:
            self.prefix = [p + [int(w)] for p, w in zip(self.prefix, prev.tolist())]
        seqs, steps, segs, positions = [], [], [], []
        for src, y in zip(self.sources, self.prefix):
            n, t = len(src), len(y) + 1
            seqs.append(src + y + [self.ids["pseudo"]])
            steps.append([0] * n + list(range(1, t)) + [-t])  # source 0, y_j +j, [P] of step t: -t
            segs.append([0] * n + [1] * t)
            positions.append([min(p, self.model.config.max_positions - 1) for p in range(n + t)])
        dev = next(self.model.parameters()).device
        input_ids, valid = (t.to(dev) for t in pad_ids(seqs, self.ids["pad"]))  # (R, L)
        step_ids, seg_ids, pos_ids = (pad_ids(x, 0)[0].to(dev) for x in (steps, segs, positions))
        hidden = self.model.encode(input_ids, pos_ids, pmlm_attention_mask(step_ids, valid), seg_ids)  # (R, L, H)
        last = valid.sum(1) - 1  # (R,) index of each row's [P]
        h = hidden[torch.arange(len(seqs), device=dev), last]  # (R, H)
        return F.log_softmax(self.model.head(h).float(), dim=-1)  # (R, V)

    def reorder(self, rows: torch.Tensor) -> None:
        rows = rows.tolist()
        self.sources = [self.sources[r] for r in rows]
        self.prefix = [list(self.prefix[r]) for r in rows]


def _check_lengths(model: PMLMModel, sources: list[list[int]]) -> None:
    max_pos = model.config.max_positions
    for i, s in enumerate(sources):
        if len(s) + 2 >= max_pos:
            raise ValueError(f"source {i + 1} has {len(s) + 2} tokens with [SOS]/[EOS], but the model has "
                             f"max_positions={max_pos}: no position is left for the target; truncate it")


def _prepare(model: PMLMModel, sources: list[list[int]], ids: dict[str, int], cfg: DecodeConfig):
    full = [[ids["sos"]] + [int(t) for t in s] + [ids["eos"]] for s in sources]
    max_pos = model.config.max_positions
    limits = [min(cfg.max_length, max_pos - len(f)) for f in full]  # target tokens that fit
    stepper = (CachedStepper if cfg.use_cache else RecomputeStepper)(model, full, ids, cfg.beam_size)
    banned = [ids[k] for k in ("pad", "sos", "mask", "pseudo")]
    return stepper, limits, banned


def _constrain(logp: torch.Tensor, hyps: list[list[int]], t: int, banned: list[int], eos: int,
               cfg: DecodeConfig) -> torch.Tensor:
    """Forbid specials, an early [EOS] and repeated n-grams: -inf log-probability."""
    logp[:, banned] = NEG_INF
    if t - 1 < cfg.min_length:
        logp[:, eos] = NEG_INF
    if cfg.no_repeat_ngram_size:
        ignore = set(cfg.forbid_ignore_ids)
        for r, y in enumerate(hyps):
            bad = banned_ngram_tokens(y, cfg.no_repeat_ngram_size, ignore)
            if bad:
                logp[r, bad] = NEG_INF
    return logp


def _greedy(model: PMLMModel, sources: list[list[int]], ids: dict[str, int], cfg: DecodeConfig) -> list[list[int]]:
    stepper, limits, banned = _prepare(model, sources, ids, cfg)
    out: list[list[int]] = [[] for _ in sources]
    alive = [True] * len(sources)
    prev = None
    for t in range(1, max(limits) + 1):
        logp = _constrain(stepper.logprobs(prev).cpu(), out, t, banned, ids["eos"], cfg)  # (B, V)
        best, choice = logp.max(-1)  # (B,), (B,)
        choice = choice.tolist()
        for b, w in enumerate(choice):
            if not alive[b]:
                continue
            if best[b] == NEG_INF:  # every token forbidden (tiny vocabularies): stop, as beam search does
                alive[b] = False
            elif w == ids["eos"]:
                alive[b] = False
            else:
                out[b].append(w)
                alive[b] = t < limits[b]
        if not any(alive):
            break
        prev = torch.tensor([w if a else ids["pad"] for w, a in zip(choice, alive)])
    return out


def _beam(model: PMLMModel, sources: list[list[int]], ids: dict[str, int], cfg: DecodeConfig) -> list[list[int]]:
    B, K, V, eos, pad = len(sources), cfg.beam_size, model.config.vocab_size, ids["eos"], ids["pad"]
    stepper, limits, banned = _prepare(model, sources, ids, cfg)
    scores = torch.full((B, K), NEG_INF)
    scores[:, 0] = 0.0  # one live hypothesis per source at first, so the K beams start distinct
    hyps: list[list[int]] = [[] for _ in range(B * K)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    prev = None
    for t in range(1, max(limits) + 1):
        logp = _constrain(stepper.logprobs(prev).cpu(), hyps, t, banned, eos, cfg)  # (B K, V)
        cand = (scores.view(B * K, 1) + logp).view(B, K * V)  # summed log-probs of every continuation
        top_s, top_i = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K)
        top_s, origin, token = top_s.tolist(), (top_i // V).tolist(), (top_i % V).tolist()
        rows, tokens, new_scores = [], [], []
        for b in range(B):
            keep: list[tuple[int, int, float]] = []  # (row, token, score)
            if not done[b]:
                for rank, (s, o, w) in enumerate(zip(top_s[b], origin[b], token[b])):
                    if s == NEG_INF or len(keep) == K:
                        break
                    r = b * K + o
                    if w == eos:
                        if rank < K:  # fairseq: only an [EOS] among the best K finishes a hypothesis
                            finished[b].append((s / length_penalty(t, cfg.length_penalty), hyps[r]))
                    else:
                        keep.append((r, w, s))
                if len(finished[b]) >= K or not keep:
                    done[b] = True
                elif t >= limits[b]:  # no room for another token: the live hypotheses end here
                    for r, w, s in keep:
                        finished[b].append((s / length_penalty(t, cfg.length_penalty), hyps[r] + [w]))
                    done[b] = True
            if done[b]:
                keep = []
            keep += [(b * K, pad, NEG_INF)] * (K - len(keep))  # dead rows fill the beam
            for r, w, s in keep:
                rows.append(r)
                tokens.append(w)
                new_scores.append(s)
        if all(done):
            break
        stepper.reorder(torch.tensor(rows))
        hyps = [hyps[r] + [w] for r, w in zip(rows, tokens)]
        scores = torch.tensor(new_scores).view(B, K)
        prev = torch.tensor(tokens)
    return [max(f, key=lambda x: x[0])[1] if f else [] for f in finished]


def _config(cfg: DecodeConfig | None, overrides: dict) -> DecodeConfig:
    return DecodeConfig(**{**(cfg.__dict__ if cfg else {}), **overrides}) if overrides or cfg is None else cfg


@torch.no_grad()
def _decode(run, model: PMLMModel, sources: list[list[int]], ids: dict[str, int], cfg: DecodeConfig,
            progress: Callable[[int], object] | None) -> list[list[int]]:
    """``run`` (greedy or beam) on batches of the sources sorted longest first; outputs in input order."""
    _check_lengths(model, sources)
    if sources:
        check_decode_memory(model, cfg, len(sources), 2 + max(len(s) for s in sources))
    order = sorted(range(len(sources)), key=lambda i: -len(sources[i]))  # stable: ties keep input order
    out: list[list[int]] = [[] for _ in sources]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            for i, y in zip(batch, run(model, [list(sources[i]) for i in batch], ids, cfg)):
                out[i] = y
            if progress is not None:
                progress(len(batch))
    finally:
        model.train(was_training)
    return out


def generate(model: PMLMModel, sources: list[list[int]], ids: dict[str, int],
             cfg: DecodeConfig | None = None, *, progress: Callable[[int], object] | None = None,
             **overrides) -> list[list[int]]:
    """Target token ids (no specials, no ``[EOS]``) for each source (token ids without specials).

    ``ids`` are the tokenizer's special ids (:func:`pmlm.tokenizer.special_ids`); ``overrides`` are
    :class:`DecodeConfig` fields. Beam size 1 runs the greedy loop. ``progress`` is called with the
    number of sources of each batch once it is decoded (``tqdm(...).update``).
    """
    cfg = _config(cfg, overrides)
    return _decode(_greedy if cfg.beam_size == 1 else _beam, model, sources, ids, cfg, progress)


def beam_search(model: PMLMModel, sources: list[list[int]], ids: dict[str, int],
                cfg: DecodeConfig | None = None, *, progress: Callable[[int], object] | None = None,
                **overrides) -> list[list[int]]:
    """Beam search for any beam size, 1 included (``generate`` sends beam 1 to the greedy loop)."""
    return _decode(_beam, model, sources, ids, _config(cfg, overrides), progress)
