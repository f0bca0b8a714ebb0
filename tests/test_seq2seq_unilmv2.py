"""Fine-tuning the published UniLMv2 as s2s-ft does: the input of a pair, the loss, the weights' forms.

s2s-ft's side is transcribed below from microsoft/unilm ``s2s-ft/`` (HEAD), each function citing the
file and function it comes from; only what does not concern the arrangement is left out (the
``v0``/``v1`` branches, the source masking that is off by default, ``split_lengths``). pmlm's side
is :func:`pmlm.finetune.seq2seq.seq2seq_example` batched by :func:`pmlm.collator.pad_and_mask`, on a
model loaded by :func:`pmlm.from_unilmv2` from a synthetic checkpoint (``tests/test_unilmv2.py``).
"""

import random

import pytest
import torch
import torch.nn.functional as F

from test_unilmv2 import V, files, s2s_ft_forward, synthetic_state  # noqa: F401  (files: a fixture)

from pmlm.collator import pad_and_mask
from pmlm.finetune.common import load_backbone, load_pretrained_model
from pmlm.finetune.seq2seq import seq2seq_example, seq2seq_loss
from pmlm.tokenizer import special_ids
from pmlm.unilmv2 import from_unilmv2, load_unilmv2

PAD, CLS, SEP, MASK = 0, 6, 7, 8  # the ids of the synthetic vocabulary (tests/test_unilmv2.py)


# ---- s2s-ft, transcribed -------------------------------------------------------------------------

class S2sFtDataset:
    """s2s_ft/utils.py, Seq2seqDatasetForBert: __trunk, __pad and the mask_way 'v2' branch of __getitem__."""

    def __init__(self, max_source_len, max_target_len, keep_prob=0.0, random_prob=0.0, target_mask_prob=0.0):
        self.max_source_len, self.max_target_len = max_source_len, max_target_len
        self.cls_id, self.sep_id, self.pad_id, self.mask_id, self.vocab_size = CLS, SEP, PAD, MASK, V
        self.keep_prob, self.random_prob, self.target_mask_prob = keep_prob, random_prob, target_mask_prob

    def trunk(self, ids, max_len, append_sep=True):
        if append_sep:
            max_len -= 1
        if len(ids) > max_len:
            ids = ids[:max_len]
        if append_sep:
            ids = ids + [self.sep_id]
        return ids

    def pad(self, ids, max_len):
        if len(ids) < max_len:
            return ids + [self.pad_id] * (max_len - len(ids))
        assert len(ids) == max_len
        return ids

    def get_masked_token(self, tk_id):
        p = random.random()
        if p < self.keep_prob:
            return tk_id
        elif p < self.keep_prob + self.random_prob:
            return random.randint(0, self.vocab_size - 1)
        return self.mask_id

    def getitem(self, source, target):
        source_ids = self.trunk([self.cls_id] + source, self.max_source_len)
        target_ids = self.trunk(target, self.max_target_len)
        num_source_tokens, num_target_tokens = len(source_ids), len(target_ids)
        source_ids = self.pad(source_ids, self.max_source_len)
        target_ids = self.pad(target_ids, self.max_target_len)
        pseudo_ids, label_ids = [], []
        for pos in range(num_target_tokens):
            tk_id = target_ids[pos]
            masked_tk_id = self.get_masked_token(tk_id)
            pseudo_ids.append(masked_tk_id)
            label_ids.append(tk_id)
            if random.random() < self.target_mask_prob:
                target_ids[pos] = masked_tk_id
        label_ids = self.pad(label_ids, self.max_target_len)
        pseudo_ids = self.pad(pseudo_ids, self.max_target_len)
        return source_ids, target_ids, label_ids, pseudo_ids, num_source_tokens, num_target_tokens


def create_mask_and_position_ids(num_tokens, max_len, offset=None):
    """s2s_ft/modeling.py, create_mask_and_position_ids."""
    base_position_matrix = torch.arange(0, max_len, dtype=num_tokens.dtype, device=num_tokens.device).view(1, -1)
    mask = (base_position_matrix < num_tokens.view(-1, 1)).type_as(num_tokens)
    if offset is not None:
        base_position_matrix = base_position_matrix + offset.view(-1, 1)
    position_ids = base_position_matrix * mask
    return mask, position_ids


def create_attention_mask(source_mask, target_mask, source_position_ids, target_span_ids):
    """s2s_ft/modeling.py, BertForSequenceToSequenceWithPseudoMask.create_attention_mask."""
    weight = torch.cat((torch.zeros_like(source_position_ids), target_span_ids, -target_span_ids), dim=1)
    from_weight = weight.unsqueeze(-1)
    to_weight = weight.unsqueeze(1)
    true_tokens = (0 <= to_weight) & (torch.cat((source_mask, target_mask, target_mask), dim=1) == 1).unsqueeze(1)
    true_tokens_mask = (from_weight >= 0) & true_tokens & (to_weight <= from_weight)
    pseudo_tokens_mask = (from_weight < 0) & true_tokens & (-to_weight > from_weight)
    pseudo_tokens_mask = pseudo_tokens_mask | ((from_weight < 0) & (to_weight == from_weight))
    return (true_tokens_mask | pseudo_tokens_mask).type_as(source_mask)


def s2s_ft_inputs(source_ids, target_ids, pseudo_ids, num_source_tokens, num_target_tokens, target_span_ids=None):
    """s2s_ft/modeling.py, BertForSequenceToSequenceWithPseudoMask.forward up to self.bert(...): the
    model's input (source_type_id 0, target_type_id 1: s2s_ft/config.py, BertForSeq2SeqConfig)."""
    input_ids = torch.cat((source_ids, target_ids, pseudo_ids), dim=1)
    token_type_ids = torch.cat((torch.ones_like(source_ids) * 0, torch.ones_like(target_ids) * 1,
                                torch.ones_like(pseudo_ids) * 1), dim=1)
    source_mask, source_position_ids = create_mask_and_position_ids(num_source_tokens, source_ids.size(1))
    target_mask, target_position_ids = create_mask_and_position_ids(
        num_target_tokens, target_ids.size(1), offset=num_source_tokens)
    position_ids = torch.cat((source_position_ids, target_position_ids, target_position_ids), dim=1)
    if target_span_ids is None:
        target_span_ids = target_position_ids
    attention_mask = create_attention_mask(source_mask, target_mask, source_position_ids, target_span_ids)
    return input_ids, token_type_ids, position_ids, attention_mask, target_mask


def s2s_ft_loss(prediction_scores_masked, label_ids, target_mask, label_smoothing=0.1):
    """s2s_ft/modeling.py: LabelSmoothingLoss (__init__ and forward, ignore_index 0) and the
    loss_mask_and_normalize of BertForSequenceToSequenceWithPseudoMask.forward."""
    smoothing_value = label_smoothing / (V - 2)
    one_hot = torch.full((V,), smoothing_value)
    one_hot[0] = 0
    one_hot, confidence = one_hot.unsqueeze(0), 1.0 - label_smoothing
    output = F.log_softmax(prediction_scores_masked.float(), dim=-1)
    batch_size, num_pos = label_ids.size(0), label_ids.size(1)
    output, target = output.view(-1, V), label_ids.view(-1)
    model_prob = one_hot.float().repeat(target.size(0), 1)
    model_prob.scatter_(1, target.unsqueeze(1), confidence)
    model_prob.masked_fill_((target == 0).unsqueeze(1), 0)
    masked_lm_loss = F.kl_div(output, model_prob, reduction="none").view(batch_size, num_pos, -1).sum(2)
    mask = target_mask.type_as(masked_lm_loss)
    return (masked_lm_loss * mask / (torch.sum(mask) + 1e-5)).sum()


def s2s_ft_batch(pairs, max_source_len, max_target_len, **kw):
    """utils.batch_list_to_batch_tensors of the dataset's items, then the model's input."""
    data = S2sFtDataset(max_source_len, max_target_len, **kw)
    items = [data.getitem(list(s), list(t)) for s, t in pairs]
    source_ids, target_ids, label_ids, pseudo_ids, n_src, n_tgt = (torch.tensor(x, dtype=torch.long) for x in zip(*items))
    return (*s2s_ft_inputs(source_ids, target_ids, pseudo_ids, n_src, n_tgt), label_ids, n_src, n_tgt)


# ---- the proofs ----------------------------------------------------------------------------------

PAIRS = [([9, 10, 11, 12, 13], [14, 15, 16]), ([17, 18], [19, 20, 21, 22, 23])]
IDS = {"pad": PAD, "unk": 5, "sos": CLS, "eos": SEP, "mask": MASK, "pseudo": MASK}  # special_ids of a BERT vocabulary


def valid_index(n_src, n_tgt, S, T):
    """Where s2s-ft's padded (S | T | T) layout holds the real tokens of one pair, in pmlm's order."""
    return list(range(n_src)) + list(range(S, S + n_tgt)) + list(range(S + T, S + T + n_tgt))


@pytest.mark.parametrize("source,target", PAIRS)
def test_the_input_of_a_pair_is_s2s_ft_arrangement(source, target):
    S, T = 12, 8
    input_ids, types, positions, mask, _, labels, n_src, n_tgt = s2s_ft_batch([(source, target)], S, T)
    keep = torch.tensor(valid_index(int(n_src), int(n_tgt), S, T))
    ours = pad_and_mask([seq2seq_example(source, target, IDS)], PAD)
    assert ours["input_ids"][0].tolist() == input_ids[0, keep].tolist()  # [CLS] s [SEP] | t [SEP] | [MASK]s
    assert ours["position_ids"][0].tolist() == positions[0, keep].tolist()  # the pseudo masks reuse t's positions
    assert ours["segment_ids"][0].tolist() == types[0, keep].tolist()  # source 0, target and pseudo masks 1
    pseudo = ours["par_labels"][0] != -100  # which tokens are pseudo masks, and what each predicts
    assert pseudo.tolist() == [False] * (int(n_src) + int(n_tgt)) + [True] * int(n_tgt)
    assert ours["par_labels"][0, pseudo].tolist() == labels[0, :int(n_tgt)].tolist()
    assert torch.equal(ours["attention_mask"][0], mask[0][keep][:, keep].bool())  # True = may attend, as s2s-ft's 1


def test_blockwise_targets_match_s2s_ft_span_arrangement():
    """pmlm's spans as s2s-ft's target_span_ids (its span_len option): the same mask."""
    source, target = PAIRS[0][0], list(range(14, 21))
    ex = seq2seq_example(source, target, IDS, factorization="block", rng=random.Random(3), span_prob=0.9)
    n, m = len(source) + 2, len(target) + 1
    spans = ex["step_ids"][n:n + m]
    assert spans.max() < m  # some span is longer than one token
    S, T = n, m
    data = S2sFtDataset(S, T)
    src_ids, tgt_ids, _, pseudo_ids, n_src, n_tgt = (torch.tensor([x]) for x in data.getitem(source, target))
    *_, mask, _ = s2s_ft_inputs(src_ids, tgt_ids, pseudo_ids, n_src, n_tgt, target_span_ids=spans[None])
    assert torch.equal(pad_and_mask([ex], PAD)["attention_mask"][0], mask[0].bool())


@pytest.mark.parametrize("fused", [False, True])
def test_fine_tuning_loss_is_s2s_ft_loss_on_a_unilmv2_checkpoint(files, fused):
    state = synthetic_state(fused)
    torch.save(state, files / "unilm2.bin")
    model, tok = from_unilmv2(files / "unilm2.bin", files / "config.json", files / "vocab.txt")
    assert special_ids(tok) == IDS
    S, T = 10, 7
    input_ids, types, positions, mask, target_mask, labels, *_ = s2s_ft_batch(PAIRS, S, T)
    with torch.no_grad():
        logits = s2s_ft_forward(state, input_ids, positions, types, mask)  # (B, S + 2T, V)
        theirs = s2s_ft_loss(logits[:, S + T:], labels, target_mask)
        ours = seq2seq_loss(model, pad_and_mask([seq2seq_example(s, t, IDS) for s, t in PAIRS], PAD), 0.1)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # without smoothing s2s-ft takes cross entropy (crit_mask_lm): so do we
        nll = F.cross_entropy(logits[:, S + T:].reshape(-1, V), labels.reshape(-1), reduction="none")
        plain = (nll * target_mask.reshape(-1)).sum() / target_mask.sum()
        torch.testing.assert_close(seq2seq_loss(model, pad_and_mask(
            [seq2seq_example(s, t, IDS) for s, t in PAIRS], PAD), 0.0), plain, rtol=1e-4, atol=1e-5)


def test_truncation_is_s2s_ft_trunk(files):
    """A pair too long for the limits, cut by encode_pairs(truncate=True), is s2s-ft's __trunk of it."""
    from pmlm.finetune.seq2seq import Seq2SeqConfig, encode_pairs

    torch.save(synthetic_state(False), files / "unilm2.bin")
    _, tok = load_unilmv2(files)
    rows = [{"source": "the she was not her it and of to the", "target": "he be not the she was"}]
    cfg = Seq2SeqConfig(max_source_len=6, max_target_len=4, truncate=True)
    stats = {}
    (s, t), = encode_pairs(tok, rows, cfg, stats)[0]
    full_s, full_t = (e.ids for e in tok.encode_batch([rows[0]["source"], rows[0]["target"]], add_special_tokens=False))
    src_ids, tgt_ids, *_ = S2sFtDataset(6, 4).getitem(full_s, full_t)
    assert [CLS] + s + [SEP] == src_ids and t + [SEP] == tgt_ids
    assert stats == {"cut_sources": 1, "cut_targets": 1}
    assert encode_pairs(tok, rows, Seq2SeqConfig(max_source_len=6, max_target_len=4))[2] == 1  # or left out


# ---- the forms --pretrained takes ----------------------------------------------------------------

def test_pretrained_takes_a_unilmv2_directory_its_bin_and_the_published_names(files, tmp_path):
    torch.save(synthetic_state(True), files / "pytorch_model.bin")
    a, tok = load_pretrained_model(files)
    b, _ = load_pretrained_model(files / "pytorch_model.bin")
    published = tmp_path / "published"
    published.mkdir()
    for name, suffix in (("pytorch_model.bin", ".bin"), ("config.json", "-config.json"), ("vocab.txt", "-vocab.txt")):
        (published / f"unilm2-base-uncased{suffix}").write_bytes((files / name).read_bytes())
    c, _ = load_pretrained_model(published)
    d, _ = load_pretrained_model(published / "unilm2-base-uncased.bin")
    for other in (b, c, d):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), other.state_dict().values()))
    assert tok.encode("The SHE").tokens == ["[CLS]", "the", "she", "[SEP]"]  # an uncased vocabulary: lower-cased


def test_pretrained_takes_reference_a_saved_model_and_a_hugging_face_export(tmp_path):
    import pmlm

    model, tok = load_pretrained_model("reference")
    model.save_pretrained(tmp_path / "saved", tokenizer=tok)
    pmlm.export_hf(model, tok, tmp_path / "hf")
    for where in (tmp_path / "saved", tmp_path / "hf"):
        other, other_tok = load_pretrained_model(where)
        assert other_tok.get_vocab_size() == tok.get_vocab_size()
        assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), other.state_dict().values()))


@pytest.mark.parametrize("missing", ["pytorch_model.bin", "config.json", "vocab.txt"])
def test_a_unilmv2_directory_missing_a_file_says_which_and_where_to_get_it(files, missing):
    torch.save(synthetic_state(False), files / "pytorch_model.bin")
    (files / missing).unlink()
    with pytest.raises(ValueError, match=f"holds no .*{missing}.*download https://unilm.blob.core.windows.net/ckpt/"):
        load_backbone(str(files))


def test_errors_name_the_keys_as_the_file_names_them(files):
    state = synthetic_state(False)
    torch.save({k: v for k, v in state.items() if k != "bert.encoder.rel_pos_bias.weight"}, files / "a.bin")
    with pytest.raises(ValueError, match=r"missing keys \['bert.rel_pos_bias.weight'\]") as err:
        from_unilmv2(files / "a.bin", files / "config.json", files / "vocab.txt")
    assert "rel_bias.table" not in str(err.value)
    torch.save({k: v for k, v in state.items() if k != "bert.encoder.layer.1.output.LayerNorm.bias"}, files / "b.bin")
    with pytest.raises(ValueError, match=r"bert.encoder.layer.1.output.LayerNorm.bias"):
        from_unilmv2(files / "b.bin", files / "config.json", files / "vocab.txt")


def test_integer_or_non_finite_weights_are_refused_by_the_file_name(files):
    state = synthetic_state(False)
    key = "bert.embeddings.word_embeddings.weight"
    for bad, message in (({**state, key: state[key].long()}, rf"not floating point: {key} \(int64\)"),
                         ({**state, key: state[key].bool()}, rf"not floating point: {key} \(bool\)"),
                         ({**state, key: state[key].clone().fill_(float("nan"))}, rf"NaN or infinite values \({key}")):
        torch.save(bad, files / "bad.bin")
        with pytest.raises(ValueError, match=message):
            from_unilmv2(files / "bad.bin", files / "config.json", files / "vocab.txt")


def test_a_config_that_is_not_json_names_its_file_and_line(files):
    (files / "config.json").write_text('{\n  "vocab_size": 40,\n  hidden_size: 16\n}\n')
    torch.save(synthetic_state(False), files / "unilm2.bin")
    with pytest.raises(ValueError, match=r"config.json:3: not valid JSON"):
        from_unilmv2(files / "unilm2.bin", files / "config.json", files / "vocab.txt")


def test_a_cased_vocabulary_is_not_lower_cased(files):
    words = (files / "vocab.txt").read_text().split("\n")
    (files / "vocab.txt").write_text("\n".join(w.capitalize() if w.isalpha() and w.islower() else w for w in words))
    torch.save(synthetic_state(False), files / "pytorch_model.bin")
    _, tok = load_unilmv2(files)
    assert tok.encode("The she").tokens == ["[CLS]", "The", "[UNK]", "[SEP]"]  # "she" is "She" here


def test_classification_fine_tunes_a_unilmv2_directory_too(files, tmp_path):
    from pmlm.finetune.__main__ import main

    torch.save(synthetic_state(False), files / "pytorch_model.bin")
    words = "the , . and of to a in was her it she not be he".split()
    data = tmp_path / "reviews.tsv"
    data.write_text("label\ttext\n" + "".join(f"{'fresh' if i % 2 else 'rotten'}\t{' '.join(words[i % 9:i % 9 + 5])} {i}\n"
                                              for i in range(60)))
    metrics = main(["classify", "--pretrained", str(files), "--data", str(data), "--preset", "smoke",
                    "--max-steps", "2", "--device", "cpu", "--threads", "1"])
    assert metrics["steps"] == 2 and 0.0 <= metrics["test_acc"] <= 1.0
