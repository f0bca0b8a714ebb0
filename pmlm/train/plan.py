"""What a pre-training run costs, before it starts: ``python -m pmlm.train --preset base --plan``.

Section 4.1 of the paper trains BASE for 0.5M steps of 7,680 examples of 512 tokens, "about 20
days using 64 Nvidia V100-32GB GPU cards". :func:`plan` counts what one optimizer step of a preset
(:data:`pmlm.train.config.TRAIN_PRESETS`) costs, and from it the whole run: tokens, FLOPs, the
memory one GPU needs and the GPU-hours, beside the paper's figure. It trains nothing, loads no
corpus and writes no run directory; :func:`format_plan` prints the result.

How each number is found, and the choices made:

* **FLOPs are counted, not estimated**: ``torch.utils.flop_counter.FlopCounterMode`` around one
  real training micro-step, ``model.loss(batch, objective)`` and its ``backward()`` (what
  :class:`pmlm.train.loop.LossModule` runs), on a batch built by the real collator
  (:func:`pmlm.tokenizer.make_collator`). So the count sees the PMLM layout of section 3.2: the n
  text tokens plus the appended ``[P]`` s and original copies (L > n), the context rows attending
  the context only (:class:`pmlm.kernels.ContextSplit`) and only the labelled rows in the top layer
  and the vocabulary projection (:meth:`pmlm.PMLMModel.loss`). FlopCounterMode counts matrix
  products (mm, addmm, bmm, attention), two FLOPs a multiply-add; embeddings, LayerNorm, softmax,
  GELU, dropout, the loss and the optimizer are elementwise and left out, as MFU counts do.
* **One example, scaled linearly**: the examples of a batch are computed independently (attention
  is quadratic in L within one example, never across examples), so B examples cost B times one.
  The example is ``[SOS] S1 [EOS] S2 [EOS]`` of ``max_length`` tokens of random ids (the values
  change no FLOP); Algorithm 1 masks a different number of tokens each draw, so the draw of median
  L among ``draws`` draws is counted and their range is printed. Not counted: padding a micro-batch
  to its longest example, and packed examples shorter than ``max_length``.
* **On the CPU**: the ``meta`` device would skip the arithmetic, but the model reads sizes off its
  data (the context length, the labelled rows, ``Tensor.item()``), which meta tensors do not have.
  One BASE example takes about 20 s on 2 cores, LARGE about 1.5 minutes.
* **Memory** of one GPU: fp32 weights, gradients and AdamW's two moments (16 bytes a parameter),
  plus the activations of a micro-batch of ``batch_size`` examples: the bytes saved for backward,
  *measured* on the same CPU pass (fp32) for one example, less what the CPU's attention kernel
  keeps (its (h, Lq, Lk) probability and dropout maps) and a GPU's fused kernel does not, times
  ``batch_size``. bf16 autocast keeps most of them in half the bytes, so this is an upper bound;
  the CUDA context and the allocator's slack are not in it.
* **Time** at a stated model-FLOPs utilisation (MFU): 40% of the bf16 dense peak. The anchor is
  llm-foundry's benchmark table, about 43% for a 125M model in bf16 on A100s at 512 tokens; no
  BERT-base MFU was found published.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models
from torch.utils.flop_counter import FlopCounterMode

from pmlm.config import PMLMConfig
from pmlm.model import PMLMModel
from pmlm.tokenizer import SPECIAL_TOKENS, load_tokenizer, make_collator, special_ids
from pmlm.train.config import TrainConfig

MFU = 0.40  # assumed; llm-foundry: ~43% for a 125M model, bf16, A100, 512 tokens
# bf16 dense peak FLOP/s (NVIDIA's data sheets), the denominator of MFU
GPU_PEAK = {"A100": 312e12, "H100 SXM": 989e12}
V100_PEAK = 125e12  # V100 SXM2 fp16 tensor-core peak, for the paper's own run
# Section 4.1: "0.5 million steps, which took about 20 days using 64 Nvidia V100-32GB GPU cards"
PAPER_RUN = {"model": "base", "steps": 500_000, "examples_per_step": 7680, "max_length": 512,
             "v100_hours": 64 * 20 * 24}
BYTES_PER_PARAMETER = 16  # fp32 weight, gradient and AdamW's two moments


@dataclass
class Plan:
    """What one optimizer step of a preset costs, and the whole run; made by :func:`plan`."""

    label: str | None  # what was planned, e.g. the command line
    model: str  # the PMLMConfig preset
    layers: int
    hidden: int  # H
    heads: int  # h
    ffn: int
    vocab_size: int  # V of the model counted
    parameters: int  # tied embeddings counted once
    non_embedding_parameters: int  # without the token, position and segment tables
    objective: str
    # --- the counted example (batch 1)
    text_tokens: int  # n = max_length: [SOS] S1 [EOS] S2 [EOS]
    masked: int  # m, drawn by Algorithm 1
    counted_length: int  # L = n + the appended [P]s and original copies (section 3.2)
    labelled_rows: int  # R: the rows of the top layer and the vocabulary projection (AE + PAR)
    length_range: tuple[int, int]  # smallest and largest L over the draws
    draws: int
    # --- one optimizer step, one process
    batch_size: int
    grad_accum: int
    examples_per_step: int  # batch_size x grad_accum (x processes: see format_plan)
    text_tokens_per_step: int
    positions_per_step: int  # examples_per_step x L: what the model computes
    flops_per_example: int  # forward + backward, counted
    flops_by_op: dict[str, int]
    flops_per_step: int  # flops_per_example x examples_per_step
    # --- the whole run
    steps: int
    total_flops: int
    # --- memory of one GPU
    weights_and_optimizer_bytes: int  # 16 bytes a parameter
    saved_bytes_per_example: int  # measured: saved for backward, fp32, CPU
    attention_scratch_bytes_per_example: int  # of which the CPU's attention maps
    gpu_memory_bytes: int  # weights and optimizer + batch_size x (saved - attention scratch)
    # --- time
    mfu: float
    gpu_hours: dict[str, float] = field(default_factory=dict)  # at `mfu` of each GPU_PEAK
    paper_v100_hours: float | None = None  # when the plan is the paper's BASE run
    count_seconds: float = 0.0

    @property
    def appended(self) -> int:
        """Positions appended to the n text tokens: the [P]s and the original copies."""
        return self.counted_length - self.text_tokens

    @property
    def activation_bytes_per_example(self) -> int:
        return self.saved_bytes_per_example - self.attention_scratch_bytes_per_example


def stand_in_tokenizer(vocab_size: int) -> Tokenizer:
    """A WordPiece tokenizer of ``vocab_size`` made-up pieces with the PMLM special tokens at ids 0..5.

    Only its size and special ids matter to the count, so the plan needs no corpus and no trained
    tokenizer (give one with ``--tokenizer`` to count on its own vocabulary).
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} leaves no room beside the {len(SPECIAL_TOKENS)} "
                         "special tokens")
    pieces = SPECIAL_TOKENS + [f"piece{i}" for i in range(vocab_size - len(SPECIAL_TOKENS))]
    return Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))


def full_length_example(tok: Tokenizer, n: int, generator: torch.Generator) -> list[int]:
    """``[SOS] S1 [EOS] S2 [EOS]`` of exactly ``n`` ids, S1 and S2 random non-special pieces."""
    ids = special_ids(tok)
    if n < 5:
        raise ValueError(f"max_length={n} leaves no room for S1 and S2 beside 3 special tokens")
    special = set(ids.values())
    ordinary = torch.tensor([i for i in range(tok.get_vocab_size()) if i not in special])
    text = ordinary[torch.randint(len(ordinary), (n - 3,), generator=generator)].tolist()
    half = (n - 3) // 2
    return [ids["sos"], *text[:half], ids["eos"], *text[half:], ids["eos"]]


class SavedBytes:
    """Bytes the autograd graph saves for backward, and which of them attention itself made.

    A ``saved_tensors_hooks`` pair sees every tensor saved for backward; each storage is counted
    once, parameters not at all. While ``F.scaled_dot_product_attention`` runs, storages other
    than its inputs' are the attention's own scratch (on the CPU's math kernel: the (h, Lq, Lk)
    probabilities and dropout masks), which a GPU's fused kernel does not keep.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.sizes: dict[int, int] = {}  # storage address -> bytes
        self.scratch: set[int] = set()
        self.attention_inputs: set[int] | None = None  # set while attention runs

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key and key not in self.parameters and key not in self.sizes:
            self.sizes[key] = storage.nbytes()
            if self.attention_inputs is not None and key not in self.attention_inputs:
                self.scratch.add(key)
        return t

    def attention(self, *args, **kwargs) -> torch.Tensor:
        tensors = [a for a in (*args, *kwargs.values()) if torch.is_tensor(a)]
        self.attention_inputs = {t.untyped_storage().data_ptr() for t in tensors}
        try:
            return self._sdpa(*args, **kwargs)
        finally:
            self.attention_inputs = None

    def __enter__(self) -> "SavedBytes":
        # pmlm.layers and pmlm.kernels call F.scaled_dot_product_attention through the module
        self._sdpa = F.scaled_dot_product_attention
        F.scaled_dot_product_attention = self.attention
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        F.scaled_dot_product_attention = self._sdpa

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    @property
    def attention_scratch(self) -> int:
        return sum(self.sizes[k] for k in self.scratch)


def count_step(model: PMLMModel, batch: dict[str, torch.Tensor], objective: str) -> dict:
    """FLOPs (total and by operator) and saved bytes of one training micro-step on ``batch``."""
    model.train()
    with FlopCounterMode(display=False) as counter, SavedBytes(model) as saved:
        loss = model.loss(batch, objective=objective)["loss"]
        loss.backward()
    if not torch.isfinite(loss):
        raise ValueError(f"the counted step gave a non-finite loss ({loss.item()})")
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return {"flops": int(counter.get_total_flops()), "by_op": by_op, "saved": saved.total,
            "attention_scratch": saved.attention_scratch}


def model_size(c: PMLMConfig) -> tuple[int, int, int, int]:
    """(layers, H, h, FFN): what decides the FLOPs besides the vocabulary."""
    return c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size


def plan(cfg: TrainConfig, label: str | None = None, *, draws: int = 101, mfu: float = MFU) -> Plan:
    """Count one optimizer step of ``cfg`` on the CPU and plan the whole run (module docstring).

    ``label`` names what is planned in the heading (``--plan`` gives the command line). With a
    time budget the run lasts minutes, not ``steps``; the whole-run figures still count ``steps``.
    """
    cfg.validate()
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    tok = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else stand_in_tokenizer(cfg.vocab_size)
    config = cfg.model_config(tok.get_vocab_size())
    generator = torch.Generator().manual_seed(cfg.seed)
    collator = make_collator(tok, objective=cfg.objective, factorization=cfg.factorization,
                             max_length=cfg.max_length, mask_ratio=cfg.mask_ratio, generator=generator)
    ids = full_length_example(tok, cfg.max_length, generator)
    lengths = []  # (L, seed) of each draw of Algorithm 1 and the layout
    for seed in range(draws):
        generator.manual_seed(seed)
        lengths.append((collator.example(ids)["input_ids"].shape[0], seed))
    L, seed = sorted(lengths)[len(lengths) // 2]
    generator.manual_seed(seed)
    batch = collator([ids])  # the median draw again, through the collator's own path: (1, L) fields
    labelled = (batch["ae_labels"] != -100) | (batch["par_labels"] != -100)  # (1, L)

    t0 = time.time()
    torch.manual_seed(cfg.seed)
    model = PMLMModel(config)
    counted = count_step(model, batch, cfg.objective)
    seconds = time.time() - t0

    embeddings = (model.token_embedding, model.position_embedding, model.segment_embedding)
    parameters = sum(p.numel() for p in model.parameters())
    examples = cfg.batch_size * cfg.grad_accum
    activations = counted["saved"] - counted["attention_scratch"]
    total = counted["flops"] * examples * cfg.steps
    gpu_hours = {gpu: total / (peak * mfu) / 3600 for gpu, peak in GPU_PEAK.items()}
    paper = PAPER_RUN
    is_paper_run = (model_size(config) == model_size(PMLMConfig.preset(paper["model"]))
                    and (cfg.steps, examples, cfg.max_length)
                    == (paper["steps"], paper["examples_per_step"], paper["max_length"]))
    return Plan(
        label=label, model=cfg.model, layers=config.num_layers, hidden=config.hidden_size,
        heads=config.num_heads, ffn=config.intermediate_size, vocab_size=config.vocab_size,
        parameters=parameters,
        non_embedding_parameters=parameters - sum(e.weight.numel() for e in embeddings),
        objective=cfg.objective, text_tokens=cfg.max_length,
        masked=int((batch["ae_labels"] != -100).sum()), counted_length=L,
        labelled_rows=int(labelled.sum()), length_range=(min(lengths)[0], max(lengths)[0]),
        draws=draws, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, examples_per_step=examples,
        text_tokens_per_step=examples * cfg.max_length, positions_per_step=examples * L,
        flops_per_example=counted["flops"], flops_by_op=counted["by_op"],
        flops_per_step=counted["flops"] * examples, steps=cfg.steps, total_flops=total,
        weights_and_optimizer_bytes=BYTES_PER_PARAMETER * parameters,
        saved_bytes_per_example=counted["saved"],
        attention_scratch_bytes_per_example=counted["attention_scratch"],
        gpu_memory_bytes=BYTES_PER_PARAMETER * parameters + cfg.batch_size * activations,
        mfu=mfu, gpu_hours=gpu_hours, paper_v100_hours=PAPER_RUN["v100_hours"] if is_paper_run else None,
        count_seconds=seconds)


def _si(x: float, unit: str = "FLOP") -> str:
    """1.46e21 -> '1.46 ZFLOP'."""
    for prefix, scale in (("Z", 1e21), ("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def _bytes(n: float) -> str:
    """Bytes in GiB, or MiB below one GiB."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _hours(h: float) -> str:
    """GPU time in hours (and days on 8 GPUs), minutes or seconds, whichever reads."""
    if h >= 24:
        return f"{h:,.0f} GPU-hours, {h / 8 / 24:,.1f} days on 8 GPUs"
    if h >= 1:
        return f"{h:.1f} GPU-hours"
    return f"{h * 60:.3g} GPU-minutes" if h >= 1 / 60 else f"{h * 3600:.3g} GPU-seconds"


def format_plan(p: Plan) -> str:
    """The plan as the lines ``--plan`` prints."""
    attention = sum(n for op, n in p.flops_by_op.items() if "bmm" in op or "attention" in op)
    rule = 6 * p.non_embedding_parameters * p.text_tokens  # 6 N n, one example
    lines = [
        f"Plan for {p.label or 'model ' + p.model}",
        f"  (trains nothing, reads no corpus; counted in {p.count_seconds:.0f} s on the CPU)",
        f"model:      {p.model}: {p.layers} layers, hidden {p.hidden}, {p.heads} heads, FFN {p.ffn}, "
        f"vocabulary {p.vocab_size:,}, objective {p.objective}",
        f"            {p.parameters / 1e6:.1f}M parameters ({p.non_embedding_parameters / 1e6:.1f}M "
        "outside the embeddings)",
        f"example:    {p.text_tokens} text tokens [SOS] S1 [EOS] S2 [EOS], {p.masked} masked (Algorithm 1)",
        f"            -> L = {p.counted_length} positions with the [P]s and original copies appended "
        f"(section 3.2): {p.appended} appended, {p.appended / p.counted_length:.1%} of L",
        f"            (L from {p.length_range[0]} to {p.length_range[1]} over {p.draws} draws, the median "
        f"one counted); {p.labelled_rows} labelled rows reach the vocabulary",
        f"step:       {p.examples_per_step:,} examples = batch_size {p.batch_size} x grad_accum "
        f"{p.grad_accum} on 1 process; on N processes divide grad_accum by N",
        f"tokens per optimizer step: {p.text_tokens_per_step:,} text tokens "
        f"({p.positions_per_step:,} positions computed)",
        f"FLOPs per example: {_si(p.flops_per_example)}, forward + backward of one real micro-step "
        "(FlopCounterMode):",
        f"            linear layers {_si(p.flops_per_example - attention)}, attention {_si(attention)}; "
        f"the rule of thumb 6 N n gives {_si(rule)}, counted / rule = {p.flops_per_example / rule:.2f}",
        "            (the appended rows, attention and the vocabulary projection are not in 6 N n)",
        f"FLOPs per optimizer step: {_si(p.flops_per_step)} = {p.examples_per_step:,} x the example "
        "(linear: attention is quadratic in L within an example only)",
        f"whole run:  {p.steps:,} steps, {_si(p.total_flops)}",
        f"GPU memory: {_bytes(p.gpu_memory_bytes)} at batch_size {p.batch_size} = weights and AdamW "
        f"{_bytes(p.weights_and_optimizer_bytes)} ({BYTES_PER_PARAMETER} bytes a parameter, fp32) "
        f"+ activations {p.batch_size} x {_bytes(p.activation_bytes_per_example)}",
        f"            activations measured on the CPU for one example: {_bytes(p.saved_bytes_per_example)} "
        f"saved for backward (fp32), less {_bytes(p.attention_scratch_bytes_per_example)} of attention",
        "            maps that a GPU's fused attention does not keep; bf16 halves most of the rest: "
        "an upper bound, CUDA context not included",
        f"GPU-hours at {p.mfu:.0%} MFU (assumed; llm-foundry measures about 43% for a 125M model, bf16, "
        "A100, 512 tokens):",
    ]
    for gpu, hours in p.gpu_hours.items():
        lines.append(f"            {gpu} ({GPU_PEAK[gpu] / 1e12:.0f} TFLOP/s bf16 dense): {_hours(hours)}")
    if p.paper_v100_hours is not None:
        per_v100 = p.total_flops / (p.paper_v100_hours * 3600)
        lines.append(f"paper:      about 20 days on 64 V100-32GB = {p.paper_v100_hours:,.0f} V100-hours "
                     f"(section 4.1); by this count {per_v100 / 1e12:.1f} TFLOP/s a V100,")
        lines.append(f"            {per_v100 / V100_PEAK:.0%} of its {V100_PEAK / 1e12:.0f} TFLOP/s fp16 "
                     "tensor-core peak")
    return "\n".join(lines)


def write_plan_json(p: Plan, path: str | Path) -> Path:
    """The plan as JSON at ``path``, written whole or not at all (a temporary sibling, then a rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(p), indent=2) + "\n")
    os.replace(tmp, path)
    return path
