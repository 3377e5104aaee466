"""VCF Zarr (the sgkit / bio2zarr ``vcz`` layout), read and written chunk by chunk with zarr.

The arrays used: ``call_genotype`` (variants, samples, ploidy) int8 allele indices (-1 missing, -2 fill for a
lower ploidy), ``call_genotype_phased``, ``variant_position``, ``variant_allele`` (variants, alleles) text (``""``
fill), ``variant_contig`` (an index into ``contig_id``), ``variant_id`` and ``sample_id``.  Reading presents them
under scikit-allel's HDF5 names to :mod:`genoae.io.hdf5`'s reader, so both containers keep the same records (the
biallelic SNPs; others skipped and counted) by the same rules.  A haploid call (``[1, -2]``) is read as homozygous,
as PLINK does.  The counted allele is ALT (= A2).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from genoae.errors import InputError
from genoae.genotypes import ALLELE_CONVENTION, Genotypes
from genoae.io.atomic import check_interrupt, interrupt_guard
from genoae.io.hdf5 import allele_indices

VCZ_VERSION = "0.5"
CHUNK_VARIANTS = 10_000
CHUNK_SAMPLES = 1_000
REQUIRED = ("call_genotype", "variant_position", "variant_allele", "sample_id")


def is_zarr_store(path) -> bool:
    """A folder holding a Zarr group (``.zgroup`` of format 2 or ``zarr.json`` of format 3)."""
    path = Path(path)
    return path.is_dir() and ((path / ".zgroup").exists() or (path / "zarr.json").exists())


def _text(array) -> np.ndarray:
    """A zarr text array as fixed-width numpy strings (numpy's StringDType does not cast with astype(str))."""
    values = np.asarray(array[...])
    return values.astype(str) if values.dtype.kind in "SU" else np.array(values.tolist(), dtype=str)


class _Genotype:
    """``call_genotype`` sliced by variants, with a haploid call's fill (-2) read as its one allele."""

    def __init__(self, array):
        self.array, self.shape, self.ndim, self.dtype = array, array.shape, array.ndim, np.dtype(np.int8)

    def __getitem__(self, index):
        block = np.asarray(self.array[index])
        if block.ndim == 3 and block.shape[2] == 2:
            second = block[..., 1]
            block[..., 1] = np.where(second == -2, block[..., 0], second)
        return np.maximum(block, -1)


class _VczAsAllel:
    """A vcz group seen through the HDF5 reader's names (``calldata/GT``, ``variants/POS``, ``samples`` ...)."""

    def __init__(self, group, path):
        missing = [name for name in REQUIRED if name not in group]
        if missing:
            raise InputError(path, f"not a VCF Zarr store: no {', '.join(missing)} (expected bio2zarr/sgkit's "
                                   f"vcz layout)")
        alleles = _text(group["variant_allele"])
        if alleles.ndim != 2 or alleles.shape[1] < 1:
            raise InputError(path, f"variant_allele has shape {alleles.shape}: expected (variants, alleles)")
        n_variants = alleles.shape[0]
        items = {"calldata/GT": _Genotype(group["call_genotype"]),
                 "samples": _text(group["sample_id"]),
                 "variants/POS": np.asarray(group["variant_position"][:]),
                 "variants/REF": alleles[:, 0],
                 "variants/ALT": alleles[:, 1:] if alleles.shape[1] > 1 else np.full((n_variants, 1), "")}
        if "variant_contig" in group and "contig_id" in group:
            contigs = _text(group["contig_id"])
            index = np.asarray(group["variant_contig"][:]).astype(np.int64)
            if index.size and (index.min() < 0 or index.max() >= len(contigs)):
                raise InputError(path, "variant_contig points outside contig_id")
            items["variants/CHROM"] = contigs[index]
        if "variant_id" in group:
            items["variants/ID"] = _text(group["variant_id"])
        self._items = items
        self.attrs = {"phased": _all_phased(group)}

    def __contains__(self, key):
        return key in self._items

    def __getitem__(self, key):
        return self._items[key]

    def keys(self):
        return self._items.keys()


def _all_phased(group) -> bool:
    """Whether every call is phased (``call_genotype_phased``), read chunk by chunk."""
    if "call_genotype_phased" not in group:
        return False
    phased = group["call_genotype_phased"]
    step = max(1, phased.chunks[0] if getattr(phased, "chunks", None) else CHUNK_VARIANTS)
    return all(bool(np.all(phased[start:start + step])) for start in range(0, phased.shape[0], step))


def _open_store(path: Path):
    import zarr

    if not path.is_dir():
        raise InputError(path, "a VCF Zarr store is a folder (bio2zarr's vcf2zarr writes one)")
    try:
        return zarr.open_group(os.fspath(path), mode="r")
    except Exception as error:  # noqa: BLE001 - zarr raises several types for a store it cannot open
        raise InputError(path, f"not a readable Zarr store ({type(error).__name__}: {error})") from None


def read_vcz_variants(path):
    """The variants :func:`read_vcz` would read, without reading any call."""
    from genoae.io.hdf5 import allel_layout_variants

    path = Path(path)
    group = _open_store(path)
    try:
        return allel_layout_variants(_VczAsAllel(group, path), path)
    except (KeyError, ValueError, TypeError, OSError) as error:
        raise InputError(path, f"cannot read variants from this VCF Zarr store: {error}") from None


def read_vcz(path, quiet: bool = False, variant_range: tuple | None = None) -> Genotypes:
    """Read biallelic SNP genotypes from a VCF Zarr store (a ``.vcz``/``.zarr`` folder); ``variant_range``:
    only those of the variants read, sliced from the store's chunks."""
    from genoae.io.hdf5 import read_allel_layout

    path = Path(path)
    group = _open_store(path)
    try:
        genotypes = read_allel_layout(_VczAsAllel(group, path), path, quiet, variant_range)
    except (KeyError, ValueError, TypeError, OSError) as error:
        raise InputError(path, f"cannot read genotypes from this VCF Zarr store: {error}") from None
    genotypes.info["reader"] = "zarr (VCF Zarr)"
    return genotypes


def write_vcz(genotypes: Genotypes, path) -> Path:
    """Write genotypes as a VCF Zarr store (zarr format 2, as bio2zarr writes), atomically: a hidden folder
    beside ``path``, renamed onto it when complete (an existing store there is replaced)."""
    import zarr

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with interrupt_guard():
            _write_store(zarr.open_group(os.fspath(staging), mode="w", zarr_format=2), genotypes)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
        raise
    return path


def _write_store(group, g: Genotypes) -> None:
    v = g.variants
    n, m = g.n_samples, g.n_variants
    contigs, contig_index = np.unique(v.chrom.astype(str), return_inverse=True)
    group.attrs.update({"vcf_zarr_version": VCZ_VERSION, "source": "genoae",
                        "genoae_allele_convention": "REF = PLINK A1 (.bim column 5), ALT = A2 (column 6), the "
                                                    "counted allele; " + ALLELE_CONVENTION})
    chunks = (min(CHUNK_VARIANTS, max(m, 1)), min(CHUNK_SAMPLES, max(n, 1)))

    def array(name, data, dimensions):
        data = np.asarray(data)
        created = group.create_array(name, shape=data.shape, dtype=str if data.dtype.kind in "UOT" else data.dtype,
                                     chunks=data.shape if data.ndim == 1 and len(data) <= CHUNK_VARIANTS else "auto")
        created[...] = data
        created.attrs["_ARRAY_DIMENSIONS"] = dimensions

    array("sample_id", g.samples.iid.astype(str), ["samples"])
    array("contig_id", contigs, ["contigs"])
    array("variant_contig", contig_index.astype(np.int16), ["variants"])
    array("variant_position", v.pos.astype(np.int64), ["variants"])
    array("variant_id", v.id.astype(str), ["variants"])
    array("variant_allele", np.stack([v.a1.astype(str), v.a2.astype(str)], axis=1), ["variants", "alleles"])
    gt = group.create_array("call_genotype", shape=(m, n, 2), dtype=np.int8, chunks=chunks + (2,))
    gt.attrs["_ARRAY_DIMENSIONS"] = ["variants", "samples", "ploidy"]
    phased = group.create_array("call_genotype_phased", shape=(m, n), dtype=bool, chunks=chunks)
    phased.attrs["_ARRAY_DIMENSIONS"] = ["variants", "samples"]
    mask = group.create_array("call_genotype_mask", shape=(m, n, 2), dtype=bool, chunks=chunks + (2,))
    mask.attrs["_ARRAY_DIMENSIONS"] = ["variants", "samples", "ploidy"]
    for start in range(0, m, chunks[0]):
        stop = min(start + chunks[0], m)
        block = allele_indices(g, start, stop)
        gt[start:stop] = block
        phased[start:stop] = g.phased
        mask[start:stop] = block < 0
        check_interrupt()
