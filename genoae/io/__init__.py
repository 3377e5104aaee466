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
    **kwargs
        Passed to the format's reader: ``quiet`` (VCF: no skipped-records note on stderr), ``legend`` (.hapt:
        legend file, None for placeholders, "auto" by default).

    Raises
    ------
    InputError
        Unknown format, missing file, or bad content (naming the file, line/record and fault).
    """
    fmt = detect_format(path)
    if fmt != "plink" and not Path(path).exists():
        raise InputError(path, "no such file")
    if fmt == "plink":
        from genoae.io.plink import read_plink

        return read_plink(path, **kwargs)
    if fmt == "vcf":
        from genoae.io.vcf import read_vcf

        return read_vcf(path, **kwargs)
    if fmt == "hdf5":
        from genoae.io.hdf5 import read_hdf5

        return read_hdf5(path, **kwargs)
    if fmt == "npy":
        from genoae.io.matrix import read_npy

        return read_npy(path, **kwargs)
    if fmt == "text":
        from genoae.io.matrix import read_text_matrix

        return read_text_matrix(path, **kwargs)
    if fmt == "hapt":
        from genoae.io.matrix import read_hapt

        return read_hapt(path, **kwargs)
    raise InputError(path, f"reading {fmt} files is not supported: convert to VCF first "
                           f"(bcftools view -Oz -o out.vcf.gz {Path(path).name})")


def write_genotypes(genotypes: Genotypes, path):
    """Write ``genotypes`` in the format named by ``path``'s extension, atomically.

    ``.bed`` (or ``.bim``/``.fam``, or a prefix without extension) -> PLINK 1 binary; ``.vcf``/``.vcf.gz`` -> VCF
    (phased when haplotypes are present); ``.h5``/``.hdf5`` -> HDF5 in scikit-allel's layout; ``.npy`` -> samples x
    SNPs int8 counts (-1 missing).

    Returns
    -------
    path : Path  (the ``.bed`` for PLINK output)
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".vcf", ".vcf.gz", ".vcf.bgz")):
        from genoae.io.vcf import write_vcf

        return write_vcf(genotypes, p)
    if name.endswith((".h5", ".hdf5")):
        from genoae.io.hdf5 import write_hdf5

        return write_hdf5(genotypes, p)
    if name.endswith(".npy"):
        from genoae.io.matrix import write_npy

        return write_npy(genotypes, p)
    if name.endswith((".bed", ".bim", ".fam")) or not p.suffix:
        from genoae.io.plink import write_plink

        return write_plink(genotypes, p)[0]
    raise InputError(path, "unknown output format: expected .bed (PLINK), .vcf/.vcf.gz, .h5 or .npy")
