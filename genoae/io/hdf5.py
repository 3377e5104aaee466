"""Genotype HDF5 files: scikit-allel's layout (what ``allel.vcf_to_hdf5`` writes) and genoae's packed layout.

scikit-allel layout (read and written)::

    samples              (n_samples,) str
    calldata/GT          (n_variants, n_samples, ploidy) int8, allele indices, -1 missing
    variants/CHROM, ID, REF   (n_variants,) str
    variants/POS         (n_variants,) int
    variants/ALT         (n_variants,) or (n_variants, n_alt) str; '' for absent alternates

genoae adds, without disturbing other readers: ``variants/CM`` (cM), ``sample_info/FID`` and ``sample_info/SEX``
(the .fam columns), and root attributes ``format``, ``allele_convention``, ``phased`` (whether ``calldata/GT`` holds
phased haplotypes; scikit-allel itself keeps no phase).

genoae's packed layout (``layout="packed"``) stores ``calldata/packed`` (n_variants, ceil(n_samples/4)) uint8 in PLINK
2-bit encoding, and ``calldata/haplotypes_packed`` when phased, instead of ``calldata/GT``: 8x smaller, same metadata.

Only biallelic SNPs are kept on reading (as for VCF); other records are skipped and counted.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from genoae.errors import InputError
from genoae.genotypes import ALLELE_CONVENTION, Genotypes, Samples, Variants, pack_calls, unpack_calls
from genoae.io.atomic import atomic_path, check_interrupt

FORMAT_NAME = "genoae-genotypes"
BLOCK_CALLS = 1 << 22  # allele indices read or written at once (int8; 8 bytes per call in the int16 copy)


def _block_variants(n_samples: int, ploidy: int = 2) -> int:
    """Variants per block: a fixed budget of calls, whatever the number of samples."""
    return max(1, BLOCK_CALLS // max(1, n_samples * ploidy))


def _strings(dataset) -> np.ndarray:
    values = dataset[()]
    if values.dtype.kind in "SO":
        return np.array([v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values])
    return values.astype(str)


def _open(path: Path):
    import h5py

    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise InputError(path, f"not a readable HDF5 file: {error}") from None


def _dataset(h5, key: str, path, ndim: tuple = (), kinds: str = ""):
    """``h5[key]`` checked to be a dataset (not a group), of one of ``ndim`` dimensions and dtype ``kinds``."""
    import h5py

    item = h5[key]
    if isinstance(item, h5py.Group) or not hasattr(item, "shape"):  # arrays of other containers pass (VCF Zarr)
        raise InputError(path, f"{key} is a group, not a dataset")
    if ndim and item.ndim not in ndim:
        raise InputError(path, f"{key} has shape {item.shape}: expected {' or '.join(map(str, ndim))} dimensions")
    if kinds and item.dtype.kind not in kinds:
        wanted = {"iu": "integers", "iuf": "numbers", "SOUT": "strings", "iub": "integers"}.get(kinds, kinds)
        raise InputError(path, f"{key} has dtype {item.dtype}: expected {wanted}")
    return item


def _alt_columns(h5, n_variants: int, path) -> tuple[np.ndarray, np.ndarray]:
    """ALT allele (first alternate) and whether a second alternate exists, per variant."""
    if "variants/ALT" not in h5:
        return np.full(n_variants, "B"), np.zeros(n_variants, bool)
    alt = _dataset(h5, "variants/ALT", path, ndim=(1, 2), kinds="SOUT")
    if alt.shape[0] != n_variants:
        raise InputError(path, f"variants/ALT has {alt.shape[0]} rows, calldata has {n_variants} variants")
    if alt.ndim == 1:
        return _strings(alt), np.zeros(n_variants, bool)
    columns = [_strings(alt[:, k]) for k in range(alt.shape[1])]
    first = columns[0] if columns else np.full(n_variants, "")
    more = np.zeros(n_variants, bool)
    for column in columns[1:]:
        more |= column != ""
    return first, more


def read_hdf5(path, quiet: bool = False, variant_range: tuple | None = None) -> Genotypes:
    """Read genotypes from an HDF5 file in scikit-allel's or genoae's packed layout.

    Parameters
    ----------
    path : str or Path
    quiet : bool
        When False, print one line on stderr if records were skipped.
    variant_range : (start, stop), optional
        Only these variants (counted as read: after skipped records), sliced from the datasets.

    Raises
    ------
    InputError
        Not HDF5, no ``calldata/GT`` or ``calldata/packed``, inconsistent shapes, ploidy > 2, or an allele index
        other than 0/1 in a kept biallelic record (naming the record).
    """
    path = Path(path)
    with _open(path) as h5:
        try:
            return read_allel_layout(h5, path, quiet, variant_range)
        except (OSError, KeyError, ValueError, TypeError) as error:  # corrupt or oddly typed datasets
            raise InputError(path, f"cannot read genotypes from this HDF5 file: {error}") from None


def read_hdf5_variants(path) -> Variants:
    """The variants :func:`read_hdf5` would read (records it skips left out), without reading any call."""
    path = Path(path)
    with _open(path) as h5:
        try:
            return allel_layout_variants(h5, path)
        except (OSError, KeyError, ValueError, TypeError) as error:
            raise InputError(path, f"cannot read variants from this HDF5 file: {error}") from None


def allel_layout_variants(h5, path: Path) -> Variants:
    """The variants :func:`read_allel_layout` reads from an open container."""
    if "calldata/packed" in h5:
        return _packed_variants(h5, h5["calldata/packed"].shape[0], path)
    return _kept_records(h5, path)["variants"]


def _packed_variants(h5, n_variants: int, path) -> Variants:
    """The variant table beside genoae's packed layout (every record is read)."""
    chrom, pos, ids, ref, cm = _read_variant_columns(h5, n_variants, path)
    alt, _ = _alt_columns(h5, n_variants, path)
    return Variants(chrom, pos, ids, ref, alt, cm)


def _kept_records(h5, path: Path) -> dict:
    """The GT dataset, its shape, and which records are read (biallelic SNPs), with their variant table."""
    if "calldata/GT" not in h5:
        raise InputError(path, f"no calldata/GT dataset (top-level keys: {', '.join(h5.keys()) or 'none'}): "
                               f"expected scikit-allel's layout")
    gt = _dataset(h5, "calldata/GT", path)
    if gt.ndim == 2:
        n_variants, n_samples, ploidy = *gt.shape, 1
    elif gt.ndim == 3:
        n_variants, n_samples, ploidy = gt.shape
    else:
        raise InputError(path, f"calldata/GT has shape {gt.shape}: expected (variants, samples, ploidy)")
    if gt.dtype.kind not in "iu":
        raise InputError(path, f"calldata/GT has dtype {gt.dtype}: expected integer allele indices")
    if ploidy not in (1, 2):
        raise InputError(path, f"calldata/GT has ploidy {ploidy}: genoae reads diploid and haploid calls only")
    if n_samples == 0 or n_variants == 0:
        raise InputError(path, f"calldata/GT has shape {gt.shape}: no calls")
    samples = _read_samples(h5, n_samples, path)
    chrom, pos, ids, ref, cm = _read_variant_columns(h5, n_variants, path)
    alt, more_alts = _alt_columns(h5, n_variants, path)
    no_alt = (alt == "") | (alt == ".")
    # a monomorphic SNP (one REF base, no ALT) is kept, as PLINK keeps it; a longer REF without ALT is a block
    skipped = {"multi-allelic": more_alts,
               "no ALT allele": no_alt & (np.char.str_len(ref) != 1),
               "symbolic ALT": np.char.startswith(alt, "<") | (alt == "*"),
               "indel/MNP": (np.char.str_len(ref) != 1) | ((np.char.str_len(alt) != 1) & ~no_alt)}
    drop = np.zeros(n_variants, bool)
    counts_skipped = {}
    for reason, mask in skipped.items():
        counts_skipped[reason] = int((mask & ~drop).sum())
        drop |= mask
    keep = np.flatnonzero(~drop)
    if keep.size == 0:
        raise InputError(path, "no biallelic SNP to read (" + ", ".join(
            f"{n} {k}" for k, n in counts_skipped.items() if n) + ")")
    shown_alt = np.where(no_alt, "0", alt)  # PLINK's missing allele code for a monomorphic SNP's A2
    return {"gt": gt, "n_variants": n_variants, "samples": samples, "ploidy": ploidy, "keep": keep,
            "no_alt": no_alt, "counts_skipped": counts_skipped,
            "variants": Variants(chrom[keep], pos[keep], ids[keep], ref[keep], shown_alt[keep], cm[keep])}


def read_allel_layout(h5, path: Path, quiet: bool, variant_range: tuple | None = None) -> Genotypes:
    """Genotypes from an open container with scikit-allel's names (an h5py File, or the VCF Zarr view of
    :mod:`genoae.io.vcz`): genoae's packed layout when present, else ``calldata/GT`` and ``variants/*``.
    ``variant_range``: only those of the variants read (records skipped are not counted)."""
    if "calldata/packed" in h5:
        return _read_packed(h5, path, variant_range)
    records = _kept_records(h5, path)
    gt, n_variants, samples, ploidy = records["gt"], records["n_variants"], records["samples"], records["ploidy"]
    n_samples = len(samples)
    keep, no_alt, counts_skipped = records["keep"], records["no_alt"], records["counts_skipped"]
    variants = records["variants"]
    n_kept = keep.size
    if variant_range is not None:
        keep = keep[variant_range[0]:variant_range[1]]
        variants = variants.subset(slice(*variant_range))
    phased = bool(h5.attrs.get("phased", False)) and ploidy == 2
    packed_blocks, hap_blocks = [], []
    block_variants = _block_variants(n_samples, ploidy)
    first, last = (int(keep[0]), int(keep[-1]) + 1) if keep.size else (0, 0)
    for start in range(first, last, block_variants):
        stop = min(start + block_variants, last)
        block_keep = keep[(keep >= start) & (keep < stop)] - start
        if block_keep.size == 0:
            continue
        block = np.asarray(gt[start:stop])
        block = block.reshape(stop - start, n_samples, ploidy)[block_keep].astype(np.int16)
        highest = np.where(no_alt[start + block_keep], 0, 1)[:, None, None]  # no ALT: only allele 0 exists
        bad = (block > highest) | (block < -1)
        if bad.any():
            v, s, _ = np.argwhere(bad)[0]
            kind = "SNP without ALT (REF=0)" if highest[v, 0, 0] == 0 else "biallelic SNP (REF=0, ALT=1)"
            raise InputError(path, f"calldata/GT allele index {int(block[v, s].max())} for sample "
                                   f"{samples.iid[s]} is out of range for a {kind}",
                             start + int(block_keep[v]) + 1, what="record")
        a = block[..., 0]
        b = block[..., 1] if ploidy == 2 else a
        missing = (a < 0) | (b < 0)
        packed_blocks.append(pack_calls(np.where(missing, -1, a + b)))
        if phased:
            bits = np.empty((len(block_keep), 2 * n_samples), np.uint8)
            bits[:, 0::2], bits[:, 1::2] = a > 0, b > 0
            hap_blocks.append(np.packbits(bits, axis=1, bitorder="little"))
    n_skipped = n_variants - n_kept
    info = {"skipped records": f"{n_skipped} of {n_variants}" + (" (" + ", ".join(
        f"{n} {k}" for k, n in counts_skipped.items() if n) + ")" if n_skipped else "")}
    if ploidy == 1:
        info["haploid calls"] = "all (read as homozygous, as PLINK does)"
    if n_skipped and not quiet:
        detail = ", ".join(f"{n} {k}" for k, n in counts_skipped.items() if n)
        print(f"genoae: {path}: skipped {n_skipped} of {n_variants} records ({detail}); kept {n_kept} "
              f"biallelic SNPs", file=sys.stderr)
    return Genotypes(np.concatenate(packed_blocks), samples, variants,
                     np.concatenate(hap_blocks) if phased else None, source=os.fspath(path), info=info)


def _read_samples(h5, n_samples: int, path) -> Samples:
    if "samples" in h5:
        iid = _strings(_dataset(h5, "samples", path, ndim=(1,)))
        if len(iid) != n_samples:
            raise InputError(path, f"'samples' has {len(iid)} names, the calls have {n_samples} samples")
    else:
        iid = np.array([f"ind{i + 1}" for i in range(n_samples)])
    fid = _strings(_dataset(h5, "sample_info/FID", path, ndim=(1,))) if "sample_info/FID" in h5 else None
    sex = _dataset(h5, "sample_info/SEX", path, ndim=(1,), kinds="iu")[()] if "sample_info/SEX" in h5 else None
    for name, values in (("sample_info/FID", fid), ("sample_info/SEX", sex)):
        if values is not None and len(values) != n_samples:
            raise InputError(path, f"{name} has {len(values)} entries, the calls have {n_samples} samples")
    return Samples(iid, fid, sex)


def _read_variant_columns(h5, n_variants: int, path):
    def column(name, default):
        key = f"variants/{name}"
        if key not in h5:
            return default
        kinds = {"POS": "iu", "CM": "iuf"}.get(name, "SOUT")
        dataset = _dataset(h5, key, path, ndim=(1,), kinds=kinds)
        if dataset.shape != (n_variants,):
            raise InputError(path, f"{key} has shape {dataset.shape}, the calls have {n_variants} variants")
        values = dataset[()] if name in ("POS", "CM") else _strings(dataset)
        if name == "POS" and values.size and values.min() < 0:
            raise InputError(path, f"{key} holds a negative position ({values.min()})",
                             int(np.argmin(values)) + 1, what="record")
        return values

    chrom = column("CHROM", np.full(n_variants, "1"))
    pos = np.asarray(column("POS", np.arange(1, n_variants + 1)), np.int64)
    ids = column("ID", np.array([f"snp{j + 1}" for j in range(n_variants)]))
    ref = column("REF", np.full(n_variants, "A"))
    cm = np.asarray(column("CM", np.zeros(n_variants)), np.float64)
    return chrom, pos, ids, ref, cm


def _read_packed(h5, path, variant_range: tuple | None = None) -> Genotypes:
    dataset = _dataset(h5, "calldata/packed", path, ndim=(2,), kinds="u")
    if dataset.dtype.itemsize != 1:
        raise InputError(path, f"calldata/packed has dtype {dataset.dtype}: expected uint8 (PLINK 2-bit codes)")
    n_variants = dataset.shape[0]
    rows = slice(None) if variant_range is None else slice(*variant_range)
    packed = dataset[rows]
    n_samples = int(h5.attrs.get("n_samples", len(h5["samples"]) if "samples" in h5 else 0))
    samples = _read_samples(h5, n_samples, path)
    if dataset.shape != (n_variants, (n_samples + 3) // 4):
        raise InputError(path, f"calldata/packed has shape {dataset.shape}, {n_samples} samples need "
                               f"{(n_samples + 3) // 4} bytes per variant")
    haps = (_dataset(h5, "calldata/haplotypes_packed", path, ndim=(2,), kinds="u")[rows]
            if "calldata/haplotypes_packed" in h5 else None)
    variants = _packed_variants(h5, n_variants, path)
    if variant_range is not None:
        variants = variants.subset(rows)
    try:
        return Genotypes(packed, samples, variants, haps, source=os.fspath(path))
    except ValueError as error:
        raise InputError(path, str(error)) from None


def allele_indices(genotypes: Genotypes, start: int, stop: int) -> np.ndarray:
    """scikit-allel's GT of variants ``start:stop``: int8 (variants, samples, 2), -1 missing; the phased
    haplotypes when present, else the alleles sorted (0/0, 0/1, 1/1)."""
    counts = unpack_calls(np.asarray(genotypes.packed[start:stop]), genotypes.n_samples)  # (b, N)
    block = np.empty(counts.shape + (2,), np.int8)
    if genotypes.phased:
        bits = np.unpackbits(np.asarray(genotypes.haplotypes_packed[start:stop]), axis=1,
                             count=2 * genotypes.n_samples, bitorder="little").reshape(counts.shape + (2,))
        block[:] = bits
    else:
        block[..., 0] = counts == 2
        block[..., 1] = counts >= 1
    block[counts < 0] = -1
    return block


def write_hdf5(genotypes: Genotypes, path, layout: str = "allel", compression: str | None = "gzip") -> Path:
    """Write genotypes to HDF5, atomically.

    Parameters
    ----------
    layout : "allel" or "packed"
        "allel": ``calldata/GT`` (n_variants, n_samples, 2) int8 that scikit-allel and other tools read;
        phased haplotypes when present, else REF/ALT sorted (0/0, 0/1, 1/1).  "packed": genoae's 2-bit layout.
    compression : str or None
        h5py filter for the call datasets (gzip level 1).
    """
    import h5py

    if layout not in ("allel", "packed"):
        raise ValueError(f"layout must be 'allel' or 'packed', not {layout!r}")
    path = Path(path)
    g, v, s = genotypes, genotypes.variants, genotypes.samples
    text = h5py.string_dtype()
    opts = {"compression": compression, "compression_opts": 1} if compression == "gzip" else \
        {"compression": compression}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = FORMAT_NAME
        h5.attrs["layout"] = layout
        h5.attrs["allele_convention"] = ("REF = PLINK A1 (.bim column 5), ALT = A2 (column 6), the counted allele; "
                                         + ALLELE_CONVENTION)
        h5.attrs["phased"] = g.phased
        h5.attrs["n_samples"] = g.n_samples
        h5.attrs["source"] = str(g.source)
        h5.create_dataset("samples", data=s.iid.astype(object), dtype=text)
        info = h5.create_group("sample_info")
        info.create_dataset("FID", data=s.fid.astype(object), dtype=text)
        info.create_dataset("SEX", data=s.sex)
        var = h5.create_group("variants")
        for name, values in (("CHROM", v.chrom), ("ID", v.id), ("REF", v.a1), ("ALT", v.a2)):
            var.create_dataset(name, data=values.astype(object), dtype=text)
        var.create_dataset("POS", data=v.pos)
        var.create_dataset("CM", data=v.cm)
        calls = h5.create_group("calldata")
        if layout == "packed":
            calls.create_dataset("packed", data=np.asarray(g.packed), **opts)
            if g.phased:
                calls.create_dataset("haplotypes_packed", data=np.asarray(g.haplotypes_packed), **opts)
            return path
        chunk_rows = max(1, min(g.n_variants, (1 << 20) // max(1, 2 * g.n_samples)))
        layout_opts = dict(chunks=(chunk_rows, g.n_samples, 2), **opts) if g.n_variants and g.n_samples else {}
        gt = calls.create_dataset("GT", shape=(g.n_variants, g.n_samples, 2), dtype=np.int8, **layout_opts)
        block_variants = _block_variants(g.n_samples)
        for start in range(0, g.n_variants, block_variants):
            stop = min(start + block_variants, g.n_variants)
            block = allele_indices(g, start, stop)
            gt[start:stop] = block
            check_interrupt()
    return path
