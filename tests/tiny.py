"""The one-layer model the training tests run: every kind of record in a few seconds."""

MODEL = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "max_positions": 64}
