"""Small models and examples the grading tests share (built with the student's package)."""

import torch


def tiny_model(seed: int = 0, vocab: int = 40, rel_pos: bool = True):
    import pmlm

    torch.manual_seed(seed)
    cfg = pmlm.PMLMConfig(vocab_size=vocab, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                          max_positions=64, rel_pos_buckets=8 if rel_pos else 0, max_rel_distance=16,
                          dropout=0.0, attention_dropout=0.0)
    return pmlm.PMLMModel(cfg).eval()


def random_example(seed: int, n: int = 14, vocab: int = 40, mask_id: int = 1, pseudo_id: int = 2):
    import pmlm

    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(5, vocab, (n,), generator=g).tolist()
    blocks = pmlm.sample_blocks(n, mask_ratio=0.4, generator=g)
    return pmlm.build_pmlm_example(tokens, blocks, mask_id=mask_id, pseudo_id=pseudo_id, vocab_size=vocab,
                                   special_ids=[0, 3, 4], generator=g)
