"""``python -m pmlm.prepare SOURCE... --out DIR``: a corpus of any size, prepared once for training.

See :mod:`pmlm.prepare.pipeline` for the passes and :mod:`pmlm.data.shards` for what the directory
holds; training reads it with ``python -m pmlm.train --data DIR``.
"""

from pmlm.prepare.pipeline import Source, free_cores, prepare

__all__ = ["Source", "free_cores", "prepare"]
