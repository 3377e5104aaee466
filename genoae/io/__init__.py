"""Readers and writers, kept apart from the models.

One entry point for reading, :func:`read_genotypes` (dispatch on extension), one for writing,
:func:`write_genotypes`, and :func:`convert` joining them.  Population labels per sample: :mod:`genoae.io.labels`
(``read_labels``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genoae.errors import InputError
from genoae.genotypes import Genotypes, Variants


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
    if name.endswith((".pgen", ".pvar", ".psam")) or Path(os.fspath(p) + ".pgen").exists():
        return "pgen"
    if name.endswith((".h5", ".hdf5")):
        return "hdf5"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith((".hapt", ".hapt.gz")):
        return "hapt"
    if name.endswith((".txt", ".tsv", ".txt.gz", ".tsv.gz")):
        return "text"
    if name.rstrip("/").endswith((".zarr", ".vcz")):
        return "vcz"
    if name.endswith(".bgen"):
        raise InputError(path, "BGEN is not read: convert it first (plink2 --bgen FILE ref-first --make-pgen)")
    if name.endswith(".geno"):
        raise InputError(path, "EIGENSTRAT .geno is not read: convert it first (convertf to PACKEDPED, i.e. .bed)")
    raise InputError(path, "unknown genotype format: expected .bed/.bim/.fam, .pgen/.pvar/.psam, .vcf[.gz], .h5, "
                           ".npy, .txt/.tsv or .hapt[.gz]")


def read_genotypes(path, quiet: bool = False, legend="auto", region: str | None = None) -> Genotypes:
    """Read genotypes from any supported file into a :class:`genoae.Genotypes`.

    Parameters
    ----------
    path : str or Path
        ``.bed``/``.bim``/``.fam`` or a PLINK prefix, ``.pgen``/``.pvar``/``.psam`` or a PLINK 2 prefix,
        ``.vcf``/``.vcf.gz``/``.vcf.bgz``, ``.h5``/``.hdf5`` (scikit-allel layout or genoae's packed one), ``.npy``,
        whitespace text (``.txt``/``.tsv``, optionally gzipped), 1000 Genomes ``.hapt``/``.hapt.gz``, or a VCF Zarr
        store (``.vcz``/``.zarr`` folder).
    quiet : bool
        VCF/HDF5: do not print the one-line note about skipped records on stderr (they are still counted in
        ``genotypes.info``).
    region : str, optional
        VCF/BCF only: ``chr1:1-5000000``, read from the file's index through bcftools.
    legend : str, Path, None or "auto"
        ``.hapt`` only: legend file (``id position a0 a1``) for chromosome/position/alleles; "auto" looks for one
        beside the file, None gives placeholder variants.

    Raises
    ------
    InputError
        Unknown format, missing file, or bad content (naming the file, line/record and fault).
    """
    fmt = detect_format(path)
    if fmt not in ("plink", "pgen") and not Path(path).exists():
        raise InputError(path, "no such file")
    if region is not None and fmt not in ("vcf", "bcf"):
        raise InputError(path, "--region needs a VCF or BCF input with an index (bcftools index)")
    if fmt == "plink":
        from genoae.io.plink import read_plink

        return read_plink(path)
    if fmt == "pgen":
        from genoae.io.pgen import read_pgen

        return read_pgen(path, quiet=quiet)
    if fmt in ("vcf", "bcf"):
        from genoae.io.vcf import read_vcf

        return read_vcf(path, quiet=quiet, region=region)
    if fmt == "hdf5":
        from genoae.io.hdf5 import read_hdf5

        return read_hdf5(path, quiet=quiet)
    if fmt == "npy":
        from genoae.io.matrix import read_npy

        return read_npy(path)
    if fmt == "vcz":
        from genoae.io.vcz import read_vcz

        return read_vcz(path, quiet=quiet)
    if fmt == "text":
        from genoae.io.matrix import read_text_matrix

        return read_text_matrix(path)
    if fmt == "hapt":
        from genoae.io.matrix import read_hapt

        return read_hapt(path, legend=legend)
    raise AssertionError(f"detect_format returned {fmt!r}, which read_genotypes does not dispatch")


@dataclass
class GenotypePart:
    """One rank's part of a SNP-sharded input (:func:`read_genotype_part`)."""

    genotypes: Genotypes     # the calls and variants start..stop-1, every individual
    variants: Variants       # every variant of the input (for the outputs rank 0 writes)
    start: int
    stop: int


def read_genotype_part(path, rank: int, size: int, quiet: bool = False) -> GenotypePart:
    """Part ``rank`` of ``size`` of an input's variants (contiguous ranges, :func:`genoae.shard.split`), reading
    only that part's calls through the format's own range access: a ``.bed`` memory-mapped over its rows alone, a
    ``.pgen`` through pgenlib's range reads, HDF5 and VCF Zarr datasets sliced (only their chunks of the range are
    read), a ``.npy`` matrix memory-mapped.  The variant table and the individuals are read whole.

    Raises
    ------
    InputError
        A text format (VCF/BCF, text matrices, .hapt: no access to a range of records without reading the text
        before it: convert it first), or fewer variants than parts.
    """
    from genoae.shard import split

    fmt = detect_format(path)
    if fmt not in ("plink", "pgen") and not Path(path).exists():
        raise InputError(path, "no such file")
    readers = {"plink": _plink_part, "pgen": _pgen_part, "hdf5": _hdf5_part, "vcz": _vcz_part, "npy": _npy_part}
    if fmt not in readers:
        raise InputError(path, f"a sharded run (torchrun) reads each rank's variants straight from the file, "
                               f"which a {fmt} file allows only by reading the text before them: convert it first "
                               f"(genoae convert IN OUT.bed)")
    variants, read_range = readers[fmt](path, quiet)
    if len(variants) < size:
        raise InputError(path, f"{len(variants)} variants for {size} ranks: each rank needs at least one")
    start, stop = split(len(variants), size)[rank]
    return GenotypePart(read_range((start, stop)), variants, start, stop)


def _plink_part(path, quiet):
    from genoae.io.plink import plink_paths, read_bim, read_plink

    return read_bim(plink_paths(path)[1]), lambda rows: read_plink(path, variant_range=rows)


def _pgen_part(path, quiet):
    from genoae.io.pgen import pgen_paths, read_pgen, read_pvar

    table, keep = read_pvar(pgen_paths(path)[1])
    return table.subset(np.flatnonzero(keep)), lambda rows: read_pgen(path, quiet=quiet, variant_range=rows)


def _hdf5_part(path, quiet):
    from genoae.io.hdf5 import read_hdf5, read_hdf5_variants

    return read_hdf5_variants(path), lambda rows: read_hdf5(path, quiet=quiet, variant_range=rows)


def _vcz_part(path, quiet):
    from genoae.io.vcz import read_vcz, read_vcz_variants

    return read_vcz_variants(path), lambda rows: read_vcz(path, quiet=quiet, variant_range=rows)


def _npy_part(path, quiet):
    from genoae.io.matrix import npy_shape, read_npy

    shape = npy_shape(path)
    if len(shape) != 2:
        raise InputError(path, f"array of shape {shape}: expected samples x SNPs")
    return Variants.placeholder(shape[1]), lambda rows: read_npy(path, variant_range=rows)


def input_files(path, legend="auto") -> list[Path]:
    """The files :func:`read_genotypes` reads for ``path`` (a PLINK prefix is its .bed, .bim and .fam; a .hapt
    its legend too), so that no output can be written over them."""
    fmt = detect_format(path)
    if fmt == "plink":
        from genoae.io.plink import plink_paths

        return list(plink_paths(path))
    if fmt == "pgen":
        from genoae.io.pgen import pgen_paths

        return list(pgen_paths(path))
    if fmt == "hapt":
        from genoae.io.matrix import find_legend

        found = find_legend(path) if legend == "auto" else legend
        return [Path(path)] + ([Path(found)] if found else [])
    return [Path(path)]


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
    if name.rstrip("/").endswith((".vcz", ".zarr")):
        return "vcz"
    if name.endswith((".bed", ".bim", ".fam")) or not p.suffix:
        return "plink"
    raise InputError(path, "unknown output format: expected .bed (PLINK), .vcf/.vcf.gz, .h5, .npy or .vcz (VCF "
                           "Zarr)")


def output_files(path) -> list[Path]:
    """The files :func:`write_genotypes` writes for ``path`` (a PLINK output is its .bed, .bim and .fam)."""
    if output_format(path) == "plink":
        from genoae.io.plink import plink_paths

        return list(plink_paths(path))
    return [Path(path)]


def write_genotypes(genotypes: Genotypes, path):
    """Write ``genotypes`` in the format named by ``path``'s extension, atomically.

    ``.bed`` (or ``.bim``/``.fam``, or a prefix without extension) -> PLINK 1 binary; ``.vcf``/``.vcf.gz`` -> VCF
    (BGZF-compressed for ``.gz``; phased when haplotypes are present); ``.h5``/``.hdf5`` -> HDF5 in scikit-allel's
    layout; ``.npy`` -> samples x SNPs int8 counts (-1 missing); ``.vcz``/``.zarr`` -> VCF Zarr (bio2zarr's layout).

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
    if fmt == "vcz":
        from genoae.io.vcz import write_vcz

        return write_vcz(genotypes, path)
    from genoae.io.plink import write_plink

    return write_plink(genotypes, path)[0]


def convert(source, target, maf: float | None = None, max_missing: float | None = None, quiet: bool = False,
            legend="auto", region: str | None = None) -> Genotypes:
    """Read ``source`` (any reader), optionally filter variants, write ``target`` (writer chosen by extension).

    Parameters
    ----------
    maf : float, optional
        Keep variants with minor allele frequency >= ``maf``.
    max_missing : float, optional
        Keep variants with a missing-call rate <= ``max_missing``.
    region : str, optional
        Indexed VCF/BCF only: the records of ``chr:start-end``.

    Returns
    -------
    Genotypes
        What was written.
    """
    output_format(target)  # refuse an unknown output extension before reading anything
    genotypes = read_genotypes(source, quiet=quiet, legend=legend, region=region)
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
