"""Random models for tests that check exact properties (decoding, masks), and twins of a model."""

import dataclasses

import torch

import pmlm


def random_decoder_model(vocab_size: int) -> pmlm.PMLMModel:
    """A random float64 model with large weights: every dependence shows, and float64 keeps
    "the same tokens" from hanging on float32 near-ties."""
    torch.manual_seed(0)
    config = pmlm.PMLMConfig(vocab_size=vocab_size, hidden_size=32, num_layers=2, num_heads=2,
                             intermediate_size=64, max_positions=40, dropout=0.0, attention_dropout=0.0,
                             initializer_range=0.3)
    return pmlm.PMLMModel(config).double().eval()


def twin(model: pmlm.PMLMModel, **kw) -> pmlm.PMLMModel:
    """A copy of ``model`` with the same weights and config fields ``kw`` changed (kernel choices)."""
    other = pmlm.PMLMModel(dataclasses.replace(model.config, **kw))
    other.load_state_dict(model.state_dict())
    return other.train(model.training)
