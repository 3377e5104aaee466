"""genoae: ancestry estimation (neural ADMIXTURE), synthetic genomes (VAE) and comparison with classic ADMIXTURE."""
from genoae.errors import InputError
from genoae.genotypes import Genotypes, Variants, Samples

__version__ = "0.1.0"
__all__ = ["Genotypes", "Variants", "Samples", "InputError", "read_genotypes", "__version__"]


def read_genotypes(path, **kwargs):
    """Read genotypes from VCF, PLINK, HDF5 or a plain matrix (see :func:`genoae.io.read_genotypes`)."""
    from genoae.io import read_genotypes as _read

    return _read(path, **kwargs)
