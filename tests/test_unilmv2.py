"""pmlm.from_unilmv2 on synthetic checkpoints with the official UniLMv2 key names and shapes (both
layouts), against an independent forward written here from s2s-ft's formulas (modeling.py)."""

import json
import math

import pytest
import torch

import pmlm
from pmlm.tokenizer import special_ids
from pmlm.unilmv2 import bert_tokenizer, convert_state_dict, from_unilmv2, unilmv2_config

H, HEADS, LAYERS, FFN, V, P, BINS = 16, 2, 2, 32, 40, 64, 8
CONFIG = {"vocab_size": V, "hidden_size": H, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
          "intermediate_size": FFN, "max_position_embeddings": P, "type_vocab_size": 2, "hidden_act": "gelu",
          "rel_pos_bins": BINS, "max_rel_pos": 32, "hidden_dropout_prob": 0.1}


def synthetic_state(fused: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.3  # noqa: E731
    s = {"bert.embeddings.word_embeddings.weight": r(V, H), "bert.embeddings.position_embeddings.weight": r(P, H),
         "bert.embeddings.token_type_embeddings.weight": r(2, H),
         "bert.embeddings.LayerNorm.weight": 1 + r(H), "bert.embeddings.LayerNorm.bias": r(H),
         "bert.encoder.rel_pos_bias.weight": r(HEADS, BINS),
         "cls.predictions.transform.dense.weight": r(H, H), "cls.predictions.transform.dense.bias": r(H),
         "cls.predictions.transform.LayerNorm.weight": 1 + r(H), "cls.predictions.transform.LayerNorm.bias": r(H),
         "cls.predictions.bias": r(V), "bert.pooler.dense.weight": r(H, H), "bert.pooler.dense.bias": r(H)}
    s["cls.predictions.decoder.weight"] = s["bert.embeddings.word_embeddings.weight"]
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}."
        if fused:
            s[p + "attention.self.qkv_linear.weight"] = r(3 * H, H)
            s[p + "attention.self.q_bias"], s[p + "attention.self.v_bias"] = r(1, 1, H), r(1, 1, H)
        else:
            for name in ("query", "key", "value"):
                s[p + f"attention.self.{name}.weight"], s[p + f"attention.self.{name}.bias"] = r(H, H), r(H)
        for name, (o, i_) in {"attention.output.dense": (H, H), "intermediate.dense": (FFN, H),
                              "output.dense": (H, FFN)}.items():
            s[p + name + ".weight"], s[p + name + ".bias"] = r(o, i_), r(o)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            s[p + name + ".weight"], s[p + name + ".bias"] = 1 + r(H), r(H)
    return s


def s2s_ft_bucket(relative_position, num_buckets, max_distance):
    """s2s-ft's relative_position_bucket (bidirectional), transcribed from modeling.py."""
    ret = 0
    num_buckets //= 2
    ret += (relative_position > 0).long() * num_buckets
    n = torch.abs(relative_position)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                                * (num_buckets - max_exact)).to(torch.long)
    val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
    return ret + torch.where(is_small, n, val_if_large)


def s2s_ft_forward(s, input_ids, position_ids, token_type_ids, mask, eps=1e-12):
    """Logits as s2s-ft's BertForSequenceToSequence computes them (eval mode), from the raw keys."""
    ln = lambda x, n: torch.nn.functional.layer_norm(x, (H,), s[n + ".weight"], s[n + ".bias"], eps)  # noqa: E731
    lin = lambda x, n: x @ s[n + ".weight"].T + s[n + ".bias"]  # noqa: E731
    gelu = lambda x: x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))  # noqa: E731
    x = (s["bert.embeddings.word_embeddings.weight"][input_ids] + s["bert.embeddings.position_embeddings.weight"][position_ids]
         + s["bert.embeddings.token_type_embeddings.weight"][token_type_ids])
    x = ln(x, "bert.embeddings.LayerNorm")
    rel = s2s_ft_bucket(position_ids.unsqueeze(-2) - position_ids.unsqueeze(-1), BINS, CONFIG["max_rel_pos"])
    rel = torch.nn.functional.one_hot(rel, BINS).float() @ s["bert.encoder.rel_pos_bias.weight"].T  # (B, L, L, h)
    rel = rel.permute(0, 3, 1, 2)
    ext = (1.0 - mask[:, None].float()) * -10000.0
    B, L = input_ids.shape
    d = H // HEADS
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}."
        if p + "attention.self.qkv_linear.weight" in s:
            q, k, v = (x @ s[p + "attention.self.qkv_linear.weight"].T).chunk(3, -1)
            q, v = q + s[p + "attention.self.q_bias"].view(-1), v + s[p + "attention.self.v_bias"].view(-1)
        else:
            q, k, v = (lin(x, p + f"attention.self.{n}") for n in ("query", "key", "value"))
        q, k, v = (t.view(B, L, HEADS, d).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + ext + rel
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, L, H)
        x = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        x = ln(lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense") + x, p + "output.LayerNorm")
    h = ln(gelu(lin(x, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
    return h @ s["bert.embeddings.word_embeddings.weight"].T + s["cls.predictions.bias"]


@pytest.fixture
def files(tmp_path):
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(4)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = "the , . and of to a in was her it she not be he".split()
    vocab += words + [f"##{c}" for c in "abcdefghijklmnopqrstuvw"[: V - len(vocab) - len(words)]]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab[:V]) + "\n")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    return tmp_path


@pytest.mark.parametrize("fused", [False, True])
def test_logits_equal_an_independent_s2s_ft_forward(files, fused):
    state = synthetic_state(fused)
    torch.save(state, files / "unilm2.bin")
    model, tok = from_unilmv2(files / "unilm2.bin", files / "config.json", files / "vocab.txt")
    # a pseudo-masked layout: context x0..x5 with [M] at 2 and 3, then [P] [P] at positions 2, 3
    ids = special_ids(tok)
    example = pmlm.build_pmlm_example([ids["sos"], 9, 10, 11, 12, ids["eos"]], [[2, 3]], mask_id=ids["mask"],
                                      pseudo_id=ids["pseudo"] + 1, vocab_size=V, replace_probs=(1.0, 0.0, 0.0))
    input_ids = example.input_ids.unsqueeze(0)
    input_ids = torch.where(input_ids == ids["pseudo"] + 1, ids["pseudo"], input_ids)  # [MASK] as [P], as s2s-ft
    pos, seg, mask = example.position_ids.unsqueeze(0), torch.zeros_like(input_ids), example.attention_mask.unsqueeze(0)
    with torch.no_grad():
        ours = model(input_ids, pos, mask, seg)
        theirs = s2s_ft_forward(state, input_ids, pos, seg, mask)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_tokenizer_keeps_bert_ids_and_maps_the_roles(files):
    tok = bert_tokenizer(files / "vocab.txt")
    vocab = (files / "vocab.txt").read_text().splitlines()
    assert all(tok.token_to_id(p) == i for i, p in enumerate(vocab))
    assert special_ids(tok) == {"pad": 0, "unk": 5, "sos": 6, "eos": 7, "mask": 8, "pseudo": 8}
    enc = tok.encode("The, she WAS")
    assert enc.tokens == ["[CLS]", "the", ",", "she", "was", "[SEP]"]
    with pytest.raises(ValueError, match="add a \\[P\\] token"):
        pmlm.tokenizer.make_collator(tok)


def test_seq2seq_decoding_runs_on_the_loaded_model(files):
    torch.save(synthetic_state(True), files / "unilm2.bin")
    model, tok = from_unilmv2(files / "unilm2.bin", files / "config.json", files / "vocab.txt")
    from pmlm.finetune import generate

    out = generate(model, [[9, 10, 11]], special_ids(tok), max_length=4)
    assert len(out) == 1 and len(out[0]) <= 4


def test_bad_checkpoints_name_what_is_wrong(files):
    state = synthetic_state(False)
    cases = [({k: v for k, v in state.items() if k != "bert.encoder.layer.1.output.dense.bias"}, "missing keys"),
             ({**state, "bert.encoder.layer.0.crossattention.w": torch.zeros(1)}, "unknown keys in the UniLMv2"),
             ({**state, "cls.predictions.bias": torch.zeros(V + 1)}, "cls.predictions.bias: file"),
             ({k: v for k, v in state.items() if k != "bert.encoder.layer.0.attention.self.key.bias"},
              "layer 0 lacks attention.self.key.bias")]
    for bad, message in cases:
        torch.save(bad, files / "bad.bin")
        with pytest.raises(ValueError, match=message):
            from_unilmv2(files / "bad.bin", files / "config.json", files / "vocab.txt")
    (files / "garbage.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        from_unilmv2(files / "garbage.bin", files / "config.json", files / "vocab.txt")
    with pytest.raises(ValueError, match="lacks \\['num_hidden_layers'\\]"):
        unilmv2_config({k: v for k, v in CONFIG.items() if k != "num_hidden_layers"})
    with pytest.raises(ValueError, match="hidden_act 'relu'"):
        unilmv2_config({**CONFIG, "hidden_act": "relu"})
    assert "layers.0.attention.qkv.weight" in convert_state_dict(state, unilmv2_config(CONFIG))


def test_classification_fine_tuning_runs_on_the_loaded_model(files):
    from pmlm.finetune import ClassifyConfig, finetune_classify

    torch.save(synthetic_state(False), files / "unilm2.bin")
    model, tok = from_unilmv2(files / "unilm2.bin", files / "config.json", files / "vocab.txt")
    rows = [{"text": t, "label": i % 2} for i, t in enumerate(["the she was", "her it not", "and of to", "be he a"] * 4)]
    splits = {"train": rows, "validation": rows[:4], "test": rows[:4]}
    metrics = finetune_classify(model, tok, splits, ClassifyConfig(max_steps=2, batch_size=4, epochs=1), log=lambda _: None)
    assert metrics["steps"] == 2 and 0.0 <= metrics["test_acc"] <= 1.0
