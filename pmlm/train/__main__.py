"""``python -m pmlm.train`` (and ``torchrun ... -m pmlm.train``): the command line of :mod:`pmlm.train.cli`."""

from pmlm.train.cli import main

if __name__ == "__main__":
    main()
