"""Readers and writers, kept apart from the models.  One entry point for reading: :func:`read_genotypes`."""
from __future__ import annotations

import os
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
    if name.endswith((".bed", ".bim", ".fam")) or Path(os.fspath(p) + ".bed").exists():
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


def output_format(path) -> str:
    """Name the output format for ``path``'s extension (raises InputError for an unknown one)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".vcf", ".vcf.gz", ".vcf.bgz")):
        return "vcf"
    if name.endswith((".h5", ".hdf5")):
        return "hdf5"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith((".bed", ".bim", ".fam")) or not p.suffix:
        return "plink"
    raise InputError(path, "unknown output format: expected .bed (PLINK), .vcf/.vcf.gz, .h5 or .npy")


def write_genotypes(genotypes: Genotypes, path):
    """Write ``genotypes`` in the format named by ``path``'s extension, atomically.

    ``.bed`` (or ``.bim``/``.fam``, or a prefix without extension) -> PLINK 1 binary; ``.vcf``/``.vcf.gz`` -> VCF
    (BGZF-compressed for ``.gz``; phased when haplotypes are present); ``.h5``/``.hdf5`` -> HDF5 in scikit-allel's
    layout; ``.npy`` -> samples x SNPs int8 counts (-1 missing).

    Returns
    -------
    path : Path  (the ``.bed`` for PLINK output)
    """
    fmt = output_format(path)
    if fmt == "vcf":
        from genoae.io.vcf import write_vcf

        return write_vcf(genotypes, path)
    if fmt == "hdf5":
        from genoae.io.hdf5 import write_hdf5

        return write_hdf5(genotypes, path)
    if fmt == "npy":
        from genoae.io.matrix import write_npy

        return write_npy(genotypes, path)
    from genoae.io.plink import write_plink

    return write_plink(genotypes, path)[0]


def convert(source, target, maf: float | None = None, max_missing: float | None = None, **read_kwargs) -> Genotypes:
    """Read ``source`` (any reader), optionally filter variants, write ``target`` (writer chosen by extension).

    Parameters
    ----------
    maf : float, optional
        Keep variants with minor allele frequency >= ``maf``.
    max_missing : float, optional
        Keep variants with a missing-call rate <= ``max_missing``.

    Returns
    -------
    Genotypes
        What was written.
    """
    output_format(target)  # refuse an unknown output extension before reading anything
    genotypes = read_genotypes(source, **read_kwargs)
    if maf is not None or max_missing is not None:
        n_before = genotypes.n_variants
        genotypes = genotypes.filter(maf=maf, max_missing=max_missing)
        genotypes.info["filtered out"] = (f"{n_before - genotypes.n_variants} of {n_before} variants "
                                          f"(maf >= {maf}, max missing {max_missing})")
        if genotypes.n_variants == 0:
            raise InputError(source, f"no variant passes the filters (maf >= {maf}, max missing rate "
                                     f"{max_missing}); nothing written")
    write_genotypes(genotypes, target)
    return genotypes
