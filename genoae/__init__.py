"""genoae: ancestry estimation (ADMIXTURE's model by maximum likelihood, with an encoder network for projection),
synthetic genomes (a VAE) and comparison of ancestry results from any program.

The library behind the ``genoae`` command: :mod:`genoae.ancestry`, :mod:`genoae.simulate`, :mod:`genoae.compare`,
:mod:`genoae.plot`, with readers and writers in :mod:`genoae.io` and the genotype container in
:mod:`genoae.genotypes`.
"""
from genoae.errors import InputError
from genoae.genotypes import Genotypes, Samples, Variants
from genoae.io import read_genotypes

__version__ = "0.1.0"
__all__ = ["Genotypes", "Variants", "Samples", "InputError", "read_genotypes", "__version__"]
