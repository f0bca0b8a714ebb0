"""Shared pieces of the benchmarks: sizes, synthetic batches, the four training steps, timing.

The question every benchmark here answers: what does one
pseudo-masked step (AE + PAR in one pass over L = n + 2m tokens) cost next to

* ``mlm``    our own model on the plain n tokens, AE only (BERT's masked LM);
* ``pmlm``   our model, AE + PAR in one pass (``model.loss(batch, objective="ae+par")``);
* ``naive``  AE + PAR by recomputation: one pass over the context for AE, then one pass per
  factorization step i over [context, originals of steps < i, the [P]s of step i]. Same math as
  ``pmlm`` (``tests/test_benchmarks.py`` checks loss and gradients agree), one pass per step;
* ``hf_mlm`` Hugging Face ``BertForMaskedLM`` of the same size on the plain n tokens, the model a
  user would otherwise pick (needs the optional ``bench`` extra: ``requirements-bench.txt``).

A *step* is forward, backward and an AdamW update, on the same batch every time. Every method has
its own model and optimizer, built from the same seed.

Timing rules (the machine is shared, so single timings lie): methods are **interleaved** round by
round, the order rotating each round; a ratio is computed *within* a round (both numbers saw the
same load), and we report the median ratio with its spread over rounds (quartiles and min-max).

Data: synthetic ``[SOS] S1 [EOS] S2 [EOS]`` sequences of uniform random word ids. Cost does not
depend on which words they are, only on n, the batch and the masks that the real collator draws.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/<name>.py` from a checkout

import pmlm  # noqa: E402
from pmlm.allocator import describe as describe_malloc, keep_freed_memory  # noqa: E402
from pmlm.attention import pmlm_attention_mask  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FIGURES = ROOT / "figures"
METHODS = ("mlm", "pmlm", "naive", "hf_mlm")
LABELS = {"mlm": "our MLM (AE, n tokens)", "pmlm": "PMLM one pass (AE+PAR)",
          "naive": "AE+PAR by recomputation", "hf_mlm": "HF BertForMaskedLM (MLM)"}

# special ids of the synthetic vocabulary; every other id is a word
PAD, UNK, SOS, EOS, MASK, PSEUDO = range(6)


@dataclass
class Size:
    """The model and batch of the performance targets (CPU, 2 threads; benchmarks/RESULTS.md)."""

    batch: int = 16
    n: int = 128  # context length, special tokens included
    layers: int = 4
    hidden: int = 256
    heads: int = 4
    ffn: int = 1024
    vocab: int = 8192
    dropout: float = 0.1  # BERT's hidden dropout, both models
    attention_dropout: float = 0.1  # BERT's default, both models (0 lets CPU SDPA take a faster kernel)
    max_positions: int = 512

    def config(self, **overrides) -> pmlm.PMLMConfig:
        fields_ = dict(vocab_size=self.vocab, hidden_size=self.hidden, num_layers=self.layers,
                       num_heads=self.heads, intermediate_size=self.ffn, max_positions=self.max_positions,
                       dropout=self.dropout, attention_dropout=self.attention_dropout)
        return pmlm.PMLMConfig(**{**fields_, **overrides})


TINY = Size(batch=4, n=32, layers=1, hidden=32, heads=2, ffn=64, vocab=128, max_positions=64)  # smoke tests


def add_size_args(p: argparse.ArgumentParser, default: Size = Size()) -> None:
    """Flags for every field of :class:`Size`, plus ``--tiny`` for a smoke run."""
    for f in dataclasses.fields(Size):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(default, f.name)),
                       default=getattr(default, f.name))
    p.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tests use it)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (targets: 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                   help="tuned: glibc keeps freed memory, as pmlm.train does (pmlm.allocator), for every "
                        "method alike; default: glibc's own thresholds")


def size_from_args(args: argparse.Namespace) -> Size:
    """The :class:`Size` the flags ask for; also applies ``--malloc`` to this process."""
    if args.malloc == "tuned":
        keep_freed_memory()
    if args.tiny:
        return TINY
    return Size(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Size)})


# ------------------------------------------------------------------------------------------ data


def synthetic_sequences(batch: int, n: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """``batch`` sequences ``[SOS] S1 [EOS] S2 [EOS]`` of exactly n tokens, random word ids."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        words = torch.randint(PSEUDO + 1, vocab, (n - 3,), generator=g).tolist()
        half = len(words) // 2
        out.append([SOS] + words[:half] + [EOS] + words[half:] + [EOS])
    return out


def collator(size: Size, objective: str = "ae+par", seed: int | None = 0) -> pmlm.PMLMCollator:
    """The collator training uses (blockwise, 80/10/10, last originals dropped)."""
    return pmlm.PMLMCollator(mask_id=MASK, pseudo_id=PSEUDO, pad_id=PAD, vocab_size=size.vocab,
                             eos_id=EOS, special_ids=[PAD, UNK, SOS, EOS], objective=objective,
                             generator=None if seed is None else torch.Generator().manual_seed(seed))


def select_tokens(batch: dict[str, torch.Tensor], keep: torch.Tensor) -> dict[str, torch.Tensor]:
    """The sub-batch of the tokens where ``keep`` (B, L) is True, right-padded, mask rebuilt.

    The attention mask is rebuilt from the kept step ids by the same rule, so a kept token sees
    exactly the kept tokens it saw before.
    """
    counts = keep.sum(1)  # (B,)
    Lk = int(counts.max())
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :Lk]  # (B, Lk) kept first
    valid = torch.arange(Lk).unsqueeze(0) < counts.unsqueeze(1)  # (B, Lk)
    out = {}
    for name, pad in (("input_ids", PAD), ("position_ids", 0), ("segment_ids", 0), ("step_ids", 0),
                      ("ae_labels", -100), ("par_labels", -100)):
        out[name] = batch[name].gather(1, order).masked_fill(~valid, pad)  # (B, Lk)
    out["valid"] = valid
    out["attention_mask"] = pmlm_attention_mask(out["step_ids"], valid)  # (B, Lk, Lk)
    return out


def naive_passes(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """AE + PAR by recomputation: the passes a model without pseudo masks' sharing would run.

    Pass 0 is the context alone (AE labels). Pass i >= 1 holds, for every example that has a step
    i, the context, the original copies of steps < i and the [P]s of step i (PAR labels of step i
    only). Built from the one-pass batch, so the masks, labels and replacements are the same.
    """
    steps, valid = batch["step_ids"], batch["valid"]  # (B, L)
    context = valid & (steps == 0)
    ae = select_tokens(batch, context)
    ae["par_labels"].fill_(-100)
    passes = [ae]
    for i in range(1, int(steps.abs().max()) + 1):  # abs: the last step has [P]s but no copies
        has = (steps == -i).any(1)  # (B,) examples with a step i
        rows = {k: v[has] for k, v in batch.items() if v.dim() == 2 and k != "attention_mask"}
        s = rows["step_ids"]
        keep = rows["valid"] & ((s == 0) | ((s > 0) & (s < i)) | (s == -i))
        p = select_tokens(rows, keep)
        p["ae_labels"].fill_(-100)  # AE was counted in pass 0
        passes.append(p)
    return passes


def make_batches(size: Size, seed: int = 0) -> dict[str, object]:
    """The same sequences laid out three ways: plain MLM, one-pass PMLM, naive passes."""
    seqs = synthetic_sequences(size.batch, size.n, size.vocab, seed)
    one_pass = collator(size, "ae+par", seed)(seqs)
    # MLM: the same blocks and replacements, without the appended tokens
    mlm = select_tokens(one_pass, one_pass["valid"] & (one_pass["step_ids"] == 0))
    return {"sequences": seqs, "mlm": mlm, "pmlm": one_pass, "naive": naive_passes(one_pass)}


# ----------------------------------------------------------------------------------------- steps


def hf_available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def hf_model(size: Size, attn_implementation: str = "sdpa") -> torch.nn.Module:
    """``BertForMaskedLM`` of the same size (the bench extra); ImportError names the fix."""
    try:
        from transformers import BertConfig, BertForMaskedLM
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the hf_mlm method needs transformers: pip install -r requirements-bench.txt "
                          "(or `make bench`)") from e
    config = BertConfig(vocab_size=size.vocab, hidden_size=size.hidden, num_hidden_layers=size.layers,
                        num_attention_heads=size.heads, intermediate_size=size.ffn,
                        max_position_embeddings=size.max_positions, hidden_dropout_prob=size.dropout,
                        attention_probs_dropout_prob=size.attention_dropout, type_vocab_size=2,
                        attn_implementation=attn_implementation)
    return BertForMaskedLM(config)


def optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """The same AdamW for every method (section 4.1: betas 0.9, 0.98, eps 1e-6, wd 0.01)."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)


def to_device(batch, device):
    if isinstance(batch, list):
        return [to_device(b, device) for b in batch]
    return {k: v.to(device) for k, v in batch.items()}


def naive_loss_backward(model: pmlm.PMLMModel, passes: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Run every pass with its own backward (gradients accumulate); returns the total loss.

    Each pass's share is scaled so that the accumulated gradient is that of the one-pass loss
    ``L_AE + L_PAR`` with ``L_PAR`` the mean over *all* [P]s of the batch.
    """
    total_par = sum(int((p["par_labels"] != -100).sum()) for p in passes[1:])
    total = model.loss(passes[0], objective="ae")["ae"]
    total.backward()
    total = total.detach()
    for p in passes[1:]:
        out = model.loss(p, objective="par")
        share = out["par"] * out["par_tokens"] / max(total_par, 1)  # sum of CE over this step's [P]s / all
        share.backward()
        total = total + share.detach()
    return total


def build_step(method: str, size: Size, batches: dict, *, seed: int = 0, device: str = "cpu",
               dtype: torch.dtype | None = None, config_overrides: dict | None = None,
               hf_attn: str = "sdpa") -> Callable[[], float]:
    """A closure that runs one training step of ``method`` and returns the loss (a float)."""
    torch.manual_seed(seed)
    autocast = (torch.autocast(device_type=device, dtype=dtype) if dtype is not None
                else torch.autocast(device_type=device, enabled=False))
    if method == "hf_mlm":
        model = hf_model(size, hf_attn).to(device).train()
        b = to_device(batches["mlm"], device)
        inputs = dict(input_ids=b["input_ids"], token_type_ids=b["segment_ids"],
                      attention_mask=b["valid"].long(), labels=b["ae_labels"])

        def loss_backward():
            with autocast:
                loss = model(**inputs).loss
            loss.backward()
            return loss.detach()
    else:
        model = pmlm.PMLMModel(size.config(**(config_overrides or {}))).to(device).train()
        if method in ("mlm", "pmlm"):
            b = to_device(batches[method], device)
            objective = "ae" if method == "mlm" else "ae+par"

            def loss_backward():
                with autocast:
                    loss = model.loss(b, objective=objective)["loss"]
                loss.backward()
                return loss.detach()
        elif method == "naive":
            passes = to_device(batches["naive"], device)

            def loss_backward():
                with autocast:
                    return naive_loss_backward(model, passes)
        else:
            raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    opt = optimizer(model)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_backward()
        opt.step()
        return float(loss)

    return step


# ------------------------------------------------------------------------------------ throughput

# dense bf16 tensor-core peaks (no sparsity), FLOP/s, by a substring of the device name
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


def peak_flops(device: str) -> float | None:
    """The accelerator's dense bf16 peak: ``PEAK_TFLOPS`` in the environment, else by device name."""
    if os.environ.get("PEAK_TFLOPS"):
        return float(os.environ["PEAK_TFLOPS"]) * 1e12
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def count_flops(step: Callable[[], float]) -> int:
    """FLOPs of one call of ``step`` (matmuls and attention, as torch's FlopCounterMode counts them)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


# ---------------------------------------------------------------------------------------- timing


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(steps: dict[str, Callable[[], float]], rounds: int, warmup: int = 1,
                device: str = "cpu", cpu_times: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Seconds per step of each method, ``rounds`` rounds, the order rotating every round.

    ``cpu_times``, if given, receives the process CPU seconds of each step too: with one thread
    that is nearly blind to other processes on the machine (with several, it counts spin-waits).
    """
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu = cpu_times if cpu_times is not None else {}
    cpu.update({name: [] for name in names})
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            steps[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return times


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def spread(xs: list[float]) -> dict[str, float]:
    """Median, quartiles and range of a list of numbers."""
    return {"median": statistics.median(xs), "q25": quantile(xs, 0.25), "q75": quantile(xs, 0.75),
            "min": min(xs), "max": max(xs), "count": len(xs)}


def ratios(times: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    """Spread of the per-round ratio num / den (both measured in the same round)."""
    return spread([a / b for a, b in zip(times[num], times[den])])


def fmt_spread(s: dict[str, float], digits: int = 2) -> str:
    f = f"{{:.{digits}f}}"
    return (f"{f.format(s['median'])} [{f.format(s['q25'])}, {f.format(s['q75'])}] "
            f"(min {f.format(s['min'])}, max {f.format(s['max'])})")


# --------------------------------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    """What the numbers were measured on: :func:`pmlm.machine.machine_info`, malloc, transformers."""
    from pmlm.machine import machine_info

    info = machine_info()
    info["malloc"] = describe_malloc()
    if hf_available():
        import transformers
        info["transformers"] = transformers.__version__
    return info


def machine_line(info: dict[str, str]) -> str:
    keys = ("cpu", "gpu", "cores", "threads", "load", "python", "torch", "transformers", "malloc")
    names = {"load": "load avg at start"}
    return ", ".join(info[k] if k == "malloc" else f"{names.get(k, k)} {info[k]}" for k in keys if k in info)


def update_results(section: str, text: str, path: Path = RESULTS) -> None:
    """Replace the block between ``<!-- section:begin -->`` and ``<!-- section:end -->``."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)


def rss_mib() -> dict[str, float]:
    """Current and peak resident memory of this process (Linux /proc), MiB."""
    with open("/proc/self/status") as f:
        s = f.read()
    get = lambda k: int(re.search(k + r":\s+(\d+)", s).group(1)) / 1024  # noqa: E731  kB -> MiB
    return {"rss": get("VmRSS"), "peak": get("VmHWM")}


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def dump_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True))
