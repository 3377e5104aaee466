"""Readers and writers, kept apart from the models.  One entry point for reading: :func:`read_genotypes`."""
from __future__ import annotations

from pathlib import Path

from genoae.errors import InputError
from genoae.genotypes import Genotypes


def detect_format(path) -> str:
    """Name the format of ``path`` from its extension (and, for PLINK prefixes, its companions)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".vcf", ".vcf.gz", ".vcf.bgz")):
        return "vcf"
    if name.endswith(".bcf"):
        return "bcf"
    if name.endswith((".bed", ".bim", ".fam")) or (not p.suffix and p.with_suffix(".bed").exists()):
        return "plink"
    if name.endswith((".h5", ".hdf5")):
        return "hdf5"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith((".hapt", ".hapt.gz")):
        return "hapt"
    if name.endswith((".txt", ".tsv", ".geno", ".txt.gz", ".tsv.gz")):
        return "text"
    raise InputError(path, "unknown genotype format: expected .bed/.bim/.fam, .vcf[.gz], .h5, .npy, "
                           ".txt/.tsv or .hapt[.gz]")


def read_genotypes(path, **kwargs) -> Genotypes:
    """Read genotypes from any supported file into a :class:`genoae.Genotypes`.

    Parameters
    ----------
    path : str or Path
        ``.bed``/``.bim``/``.fam`` or a PLINK prefix, ``.vcf``/``.vcf.gz``, ``.h5``, ``.npy``, whitespace text,
        or 1000 Genomes ``.hapt`` haplotype text.
    """
    fmt = detect_format(path)
    if fmt == "plink":
        from genoae.io.plink import read_plink

        return read_plink(path, **kwargs)
    raise InputError(path, f"reading {fmt} files is not implemented yet")
