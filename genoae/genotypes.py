"""The genotype container shared by every genoae command.

Calls are stored packed at 2 bits per call in PLINK's SNP-major encoding, so a ``.bed`` file maps onto the
container without a copy:

=====  ===================================  ================
code   meaning                              A2 count (``g``)
=====  ===================================  ================
0b00   homozygous A1 (``.bim`` column 5)     0
0b01   missing                               -1
0b10   heterozygous                          1
0b11   homozygous A2 (``.bim`` column 6)     2
=====  ===================================  ================

Sample ``i`` of variant ``j`` sits in byte ``packed[j, i // 4]`` at bits ``2 * (i % 4)``.  The counted allele is
A2 = the ALT allele of a VCF, as in ADMIXTURE (its P is the A2 frequency).  Phased haplotypes, when the input had
them, are kept beside the calls as bits (``haplotypes_packed``), haplotype ``2 i + h`` of sample ``i``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

ALLELE_CONVENTION = "A2 (PLINK .bim column 6) = VCF ALT allele count; ADMIXTURE convention"
MISSING = -1

# code -> A2 count; 0b01 (missing) -> -1
_CODE_TO_COUNT = np.array([0, MISSING, 1, 2], dtype=np.int8)
# byte -> 4 A2 counts, vectorised decoding without a Python loop per call
_BYTE_TO_COUNTS = _CODE_TO_COUNT[(np.arange(256)[:, None] >> (2 * np.arange(4))) & 3].astype(np.int8)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _popcount_rows(bits: np.ndarray) -> np.ndarray:
    """Number of set bits per row of a uint8 matrix, shape (n_rows,), int64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(bits).sum(axis=1, dtype=np.int64)
    return _POPCOUNT[bits].sum(axis=1, dtype=np.int64)


_BYTE_TO_COUNTS_ON = {}  # the decoding table as a tensor, per torch device: copied there once, not per batch


def _byte_to_counts_on(device):
    if device not in _BYTE_TO_COUNTS_ON:
        import torch

        _BYTE_TO_COUNTS_ON[device] = torch.from_numpy(_BYTE_TO_COUNTS).to(device)
    return _BYTE_TO_COUNTS_ON[device]


def unpack_calls(packed, n_samples: int):
    """Decode packed calls, 4 per byte along the last axis: the one decoder (NumPy arrays and torch tensors).

    Parameters
    ----------
    packed : ndarray or torch.Tensor, uint8, shape (n_rows, ceil(n_samples / 4))
        SNP-major rows of a ``.bed`` (then ``n_samples`` is the number of individuals), or any other rows packed
        the same way (the sample-major copy of :class:`DeviceUnpacker`: rows are individuals, ``n_samples`` the
        number of variants).
    n_samples : int
        Calls per row; the padding calls of the last byte are dropped.

    Returns
    -------
    counts : same kind as ``packed``, int8, shape (n_rows, n_samples)
        A2 allele counts, -1 for missing.
    """
    if isinstance(packed, np.ndarray):
        counts = _BYTE_TO_COUNTS[packed]  # (n_rows, n_bytes, 4)
    else:  # a torch tensor, decoded on its own device
        counts = _byte_to_counts_on(packed.device)[packed.long()]
    return counts.reshape(packed.shape[0], 4 * packed.shape[1])[:, :n_samples]  # explicit: -1 fails for 0 rows


def calls_to_codes(counts: np.ndarray) -> np.ndarray:
    """A2 counts (0, 1, 2; negative = missing) -> PLINK 2-bit codes (0b00, 0b10, 0b11; 0b01), uint8, same shape."""
    counts = np.asarray(counts)
    if counts.size and counts.max() > 2:
        raise ValueError("allele counts must be 0, 1, 2 or missing (< 0)")
    codes = counts.astype(np.uint8)
    np.add(codes, codes > 0, out=codes, casting="unsafe")  # 0, 1, 2 -> 0b00, 0b10, 0b11
    codes[counts < 0] = 0b01
    return codes


def pack_codes(codes: np.ndarray, axis: int = 1) -> np.ndarray:
    """Pack 2-bit codes four to a byte along ``axis``, in PLINK's order (call ``4 b + k`` at bits ``2 k`` of byte
    ``b``); the one packer.

    Parameters
    ----------
    codes : ndarray, uint8, shape (n_rows, n_cols), values 0-3
    axis : int
        1: pack each row (variant-major codes (n_variants, n_samples) -> a ``.bed`` layout); 0: pack each column
        (sample-major codes (n_samples, n_variants) give the same ``.bed`` layout without transposing the input).

    Returns
    -------
    packed : ndarray, uint8, shape (n_other, ceil(n_packed / 4)), padding calls 0b00 as PLINK writes them
    """
    codes = np.asarray(codes, dtype=np.uint8)
    if codes.shape[axis] % 4:  # whole bytes: padding calls 0b00
        padding = [(0, 0), (0, 0)]
        padding[axis] = (0, -codes.shape[axis] % 4)
        codes = np.pad(codes, padding)
    n_bytes = codes.shape[axis] // 4
    if axis == 0:  # groups of 4 rows: each output byte reads 4 contiguous rows, the input is never transposed
        quads = codes.reshape(n_bytes, 4, codes.shape[1])
        packed = quads[:, 0] | (quads[:, 1] << 2)
        packed |= quads[:, 2] << 4
        packed |= quads[:, 3] << 6
        return np.ascontiguousarray(packed.T)
    quads = codes.reshape(codes.shape[0], n_bytes, 4)
    packed = quads[..., 0] | (quads[..., 1] << 2)
    packed |= quads[..., 2] << 4
    packed |= quads[..., 3] << 6
    return packed


# decoded calls a block of variants holds in the passes over packed calls (4 MB of int8 counts)
BLOCK_CALLS = 1 << 22


def take_samples(packed: np.ndarray, n_samples: int, sample_index: np.ndarray) -> np.ndarray:
    """The packed SNP-major calls of the individuals ``sample_index`` (in that order), uint8
    (n_variants, ceil(len(sample_index) / 4)): each call's 2-bit code copied from its byte
    (:func:`genoae.kernels.take_sample_codes`), no decoded temporary."""
    from genoae.kernels import take_sample_codes  # numba: loaded by whoever subsets, not every genotypes reader

    sample_index = np.asarray(sample_index, np.int64)
    if len(sample_index) and (sample_index.min() < 0 or sample_index.max() >= n_samples):
        raise IndexError(f"sample index out of range for {n_samples} individuals")
    packed = np.ascontiguousarray(packed)
    chosen = np.empty((packed.shape[0], (len(sample_index) + 3) // 4), np.uint8)
    take_sample_codes(packed, sample_index, chosen)
    return chosen


def pack_calls(counts: np.ndarray, axis: int = 1) -> np.ndarray:
    """Encode A2 counts into packed calls (:func:`calls_to_codes`, then :func:`pack_codes` along ``axis``).

    Parameters
    ----------
    counts : ndarray, integer, shape (n_variants, n_samples) for ``axis=1``, (n_samples, n_variants) for ``axis=0``
        0, 1, 2, or any negative value for missing.

    Returns
    -------
    packed : ndarray, uint8, shape (n_variants, ceil(n_samples / 4))
    """
    return pack_codes(calls_to_codes(counts), axis)


def pack_haplotype_bits(bits: np.ndarray) -> np.ndarray:
    """Haplotype-major alleles (2 n_samples, n_variants), 1 = A2, -> variant-major bits (n_variants,
    ceil(2 n_samples / 8)), haplotype ``h`` at bit ``h % 8`` of byte ``h // 8`` (``np.packbits``'s little order).

    Packs along the first axis in place of ``np.packbits(bits.T, axis=1, bitorder="little")``, which transposes
    the whole matrix first (4x slower at 20,000 haplotypes x 10,000 SNPs).
    """
    bits = np.asarray(bits, dtype=np.uint8)
    n_rows, n_variants = bits.shape
    full = n_rows // 8
    packed = np.zeros((full + (n_rows % 8 > 0), n_variants), np.uint8)
    octets = bits[:8 * full].reshape(full, 8, n_variants)
    for k in range(8):
        packed[:full] |= octets[:, k] << k
    for k in range(n_rows % 8):
        packed[full] |= bits[8 * full + k] << k
    return np.ascontiguousarray(packed.T)


def allele_frequencies(rows: np.ndarray, ploidy: int) -> np.ndarray:
    """A2 frequency per variant over the observed calls of a dense allele matrix.

    Parameters
    ----------
    rows : ndarray, integer, shape (n_rows, n_variants)
        Haplotypes (0/1, ``ploidy=1``) or individuals' A2 counts (0/1/2, ``ploidy=2``); negative = missing.

    Returns
    -------
    ndarray, float64, shape (n_variants,)   NaN where nothing is observed

    :meth:`Genotypes.allele_freqs` gives the same numbers from the packed calls without decoding them.
    """
    rows = np.asarray(rows)
    observed = rows >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(observed, rows, 0).sum(axis=0, dtype=np.float64) / (ploidy * observed.sum(axis=0))


@dataclass
class Samples:
    """Individuals, in file order.

    Attributes
    ----------
    iid : ndarray, str, shape (n_samples,)
    fid : ndarray, str, shape (n_samples,)  family IDs (``iid`` when the input has none)
    sex : ndarray, int8, shape (n_samples,)  PLINK coding 1 male, 2 female, 0 unknown
    """

    iid: np.ndarray
    fid: np.ndarray | None = None
    sex: np.ndarray | None = None

    def __post_init__(self):
        self.iid = np.asarray(self.iid, dtype=str)
        self.fid = self.iid.copy() if self.fid is None else np.asarray(self.fid, dtype=str)
        self.sex = np.zeros(len(self.iid), np.int8) if self.sex is None else np.asarray(self.sex, dtype=np.int8)
        if not (len(self.fid) == len(self.iid) == len(self.sex)):
            raise ValueError("iid, fid and sex must have the same length")

    def __len__(self) -> int:
        return len(self.iid)

    def subset(self, index) -> "Samples":
        return Samples(self.iid[index], self.fid[index], self.sex[index])


@dataclass
class Variants:
    """Variant table, in file order.

    Attributes
    ----------
    chrom : ndarray, str
    pos : ndarray, int64   base-pair position
    id : ndarray, str      ``.`` where the input has none
    a1 : ndarray, str      reference / PLINK A1 (column 5), the allele *not* counted
    a2 : ndarray, str      alternate / PLINK A2 (column 6), the counted allele
    cm : ndarray, float64  genetic position (0 when unknown)
    """

    chrom: np.ndarray
    pos: np.ndarray
    id: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    cm: np.ndarray | None = None

    def __post_init__(self):
        self.chrom = np.asarray(self.chrom, dtype=str)
        self.pos = np.asarray(self.pos, dtype=np.int64)
        self.id = np.asarray(self.id, dtype=str)
        self.a1 = np.asarray(self.a1, dtype=str)
        self.a2 = np.asarray(self.a2, dtype=str)
        self.cm = np.zeros(len(self.pos)) if self.cm is None else np.asarray(self.cm, dtype=np.float64)
        lengths = {len(self.chrom), len(self.pos), len(self.id), len(self.a1), len(self.a2), len(self.cm)}
        if len(lengths) != 1:
            raise ValueError("all variant columns must have the same length")

    def __len__(self) -> int:
        return len(self.pos)

    def subset(self, index) -> "Variants":
        return Variants(self.chrom[index], self.pos[index], self.id[index], self.a1[index], self.a2[index],
                        self.cm[index])

    @classmethod
    def placeholder(cls, n_variants: int, chrom: str = "1") -> "Variants":
        """Variants with no known positions or alleles (e.g. a plain matrix): ids ``snp1..``, alleles A1=A, A2=B."""
        return cls(chrom=np.full(n_variants, chrom), pos=np.arange(1, n_variants + 1),
                   id=np.array([f"snp{j + 1}" for j in range(n_variants)]),
                   a1=np.full(n_variants, "A"), a2=np.full(n_variants, "B"))


@dataclass
class Genotypes:
    """Packed diploid calls with their samples and variants.

    Attributes
    ----------
    packed : ndarray, uint8, shape (n_variants, ceil(n_samples / 4))
        SNP-major 2-bit calls in PLINK encoding (may be a read-only memory map of a ``.bed``).
    samples : Samples
    variants : Variants
    haplotypes_packed : ndarray, uint8, shape (n_variants, ceil(2 n_samples / 8)), optional
        Phased alleles as bits (1 = A2), haplotype ``2 i + h`` of sample ``i``; present only for phased input.
    source : str
        Where the data came from (file path or description).
    """

    packed: np.ndarray
    samples: Samples
    variants: Variants
    haplotypes_packed: np.ndarray | None = None
    source: str = ""
    ploidy: int = 2
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        expected = (len(self.variants), (len(self.samples) + 3) // 4)
        if self.packed.shape != expected:
            raise ValueError(f"packed calls have shape {self.packed.shape}, expected {expected}")
        if self.haplotypes_packed is not None:
            expected_h = (len(self.variants), (2 * len(self.samples) + 7) // 8)
            if self.haplotypes_packed.shape != expected_h:
                raise ValueError(f"packed haplotypes have shape {self.haplotypes_packed.shape}, expected {expected_h}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_counts(cls, counts, samples: Samples | None = None, variants: Variants | None = None,
                    source: str = "", sample_major: bool = True) -> "Genotypes":
        """Build from A2 allele counts.

        Parameters
        ----------
        counts : array_like, integer, shape (n_samples, n_variants) if ``sample_major`` else (n_variants, n_samples)
            0/1/2, negative for missing.
        """
        counts = np.asarray(counts)
        n_variants, n_samples = counts.shape[::-1] if sample_major else counts.shape
        samples = samples or Samples(np.array([f"ind{i + 1}" for i in range(n_samples)]))
        variants = variants or Variants.placeholder(n_variants)
        return cls(pack_calls(counts, axis=0 if sample_major else 1), samples, variants, source=source)

    @classmethod
    def from_haplotypes(cls, haplotypes, samples: Samples | None = None, variants: Variants | None = None,
                        source: str = "") -> "Genotypes":
        """Build from phased haplotypes.

        Parameters
        ----------
        haplotypes : array_like, integer, shape (n_samples, 2, n_variants)
            1 = A2 allele, 0 = A1, negative = missing (the call becomes missing).
        """
        haps = np.asarray(haplotypes)
        if haps.ndim != 3 or haps.shape[1] != 2:
            raise ValueError("haplotypes must have shape (n_samples, 2, n_variants)")
        alleles = haps.astype(np.int8)  # int8 so that the missing value -1 fits whatever the input dtype
        if alleles.size and (alleles.min() < 0 or alleles.max() > 1):
            missing = (alleles < 0).any(axis=1)
            alleles = alleles.clip(0, 1)
            counts = np.where(missing, np.int8(MISSING), alleles[:, 0] + alleles[:, 1])
        else:
            counts = alleles[:, 0] + alleles[:, 1]
        geno = cls.from_counts(counts, samples, variants, source=source)
        geno.haplotypes_packed = pack_haplotype_bits(alleles.reshape(-1, haps.shape[2]))
        return geno

    # ------------------------------------------------------------------ shape
    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def n_variants(self) -> int:
        return len(self.variants)

    @property
    def phased(self) -> bool:
        return self.haplotypes_packed is not None

    def __repr__(self) -> str:
        return (f"Genotypes({self.n_samples} samples x {self.n_variants} variants, "
                f"{'phased' if self.phased else 'unphased'}, source={self.source!r})")

    # ------------------------------------------------------------------ decoding
    def counts(self, samples=None, variants=None) -> np.ndarray:
        """A2 allele counts.

        Returns
        -------
        counts : ndarray, int8, shape (n_samples, n_variants)  (sample-major), -1 = missing
        """
        packed = self.packed if variants is None else self.packed[variants]
        counts = unpack_calls(np.asarray(packed), self.n_samples)
        if samples is not None:
            counts = counts[:, samples]
        return np.ascontiguousarray(counts.T)

    def haplotypes(self, samples=None) -> np.ndarray:
        """Phased alleles (1 = A2).

        Returns
        -------
        haplotypes : ndarray, int8, shape (n_samples, 2, n_variants); -1 where the call is missing.
        """
        if self.haplotypes_packed is None:
            raise ValueError(f"{self.source or 'these genotypes'} hold no phased haplotypes")
        bits = np.unpackbits(self.haplotypes_packed, axis=1, count=2 * self.n_samples, bitorder="little")
        haps = bits.T.reshape(self.n_samples, 2, self.n_variants).astype(np.int8)
        missing = self.counts() < 0
        haps[np.repeat(missing[:, None, :], 2, axis=1)] = MISSING
        return haps if samples is None else haps[samples]

    # ------------------------------------------------------------------ summaries
    def variants_per_block(self, calls: int = BLOCK_CALLS) -> int:
        """Variants per block so that a block holds about ``calls`` calls whatever the number of individuals
        (a fixed block budget: 4,096 variants × 10⁶ individuals would be 4 GB of counts)."""
        return max(1, calls // max(self.n_samples, 1))

    def _per_variant_tallies(self, chunk: int | None = None):
        """Observed-call count and A2 allele sum per variant, straight from the packed bytes in chunks.

        Bit arithmetic instead of unpacking: per 2-bit code (hi, lo), the call is observed unless (0, 1), and its
        A2 count is hi + (hi & lo); so population counts of three masked bytes give both tallies.
        """
        n_observed = np.zeros(self.n_variants, np.int64)
        a2_sum = np.zeros(self.n_variants, np.int64)
        n_bytes = (self.n_samples + 3) // 4
        if n_bytes == 0:
            return n_observed, a2_sum
        # 0b01 at every 2-bit pair that holds a real sample; the last byte may carry padding pairs
        chunk = chunk or self.variants_per_block()  # 1 MB of packed bytes per block, ~5 MB of temporaries
        pair_mask = np.full(n_bytes, 0x55, np.uint8)
        if self.n_samples % 4:
            pair_mask[-1] = 0x55 & ((1 << (2 * (self.n_samples % 4))) - 1)
        for start in range(0, self.n_variants, chunk):
            block = np.asarray(self.packed[start:start + chunk])
            hi = (block >> 1) & pair_mask
            lo = block & pair_mask
            observed = hi | (lo ^ pair_mask)
            n_observed[start:start + chunk] = _popcount_rows(observed)
            a2_sum[start:start + chunk] = _popcount_rows(hi) + _popcount_rows(hi & lo)
        return n_observed, a2_sum

    def allele_freqs(self) -> np.ndarray:
        """A2 allele frequency per variant over observed calls (NaN when no call is observed).

        Returns
        -------
        ndarray, float64, shape (n_variants,)
        """
        n_observed, a2_sum = self._per_variant_tallies()
        with np.errstate(invalid="ignore", divide="ignore"):
            return a2_sum / (2.0 * n_observed)

    def maf(self) -> np.ndarray:
        """Minor allele frequency per variant (NaN when no call is observed)."""
        freqs = self.allele_freqs()
        return np.minimum(freqs, 1 - freqs)

    def missing_rate_per_variant(self) -> np.ndarray:
        n_observed, _ = self._per_variant_tallies()
        return 1.0 - n_observed / max(self.n_samples, 1)

    def missing_rate_per_sample(self, chunk: int | None = None) -> np.ndarray:
        chunk = chunk or self.variants_per_block()
        n_missing = np.zeros(self.n_samples, np.int64)
        for start in range(0, self.n_variants, chunk):
            block = unpack_calls(np.asarray(self.packed[start:start + chunk]), self.n_samples)
            n_missing += (block < 0).sum(axis=0)
        return n_missing / max(self.n_variants, 1)

    def missing_rate(self) -> float:
        if self.n_variants == 0 or self.n_samples == 0:
            return 0.0
        return float(self.missing_rate_per_variant().mean())

    # ------------------------------------------------------------------ subsetting
    def subset(self, samples=None, variants=None) -> "Genotypes":
        """A new container with the chosen samples and/or variants (index arrays, masks or slices)."""
        packed = np.asarray(self.packed if variants is None else self.packed[variants])
        haps = None if self.haplotypes_packed is None else (
            self.haplotypes_packed if variants is None else self.haplotypes_packed[variants])
        new_samples = self.samples
        new_variants = self.variants if variants is None else self.variants.subset(variants)
        if samples is not None:
            sample_index = np.arange(self.n_samples)[samples]
            packed = take_samples(packed, self.n_samples, sample_index)
            new_samples = self.samples.subset(sample_index)
            if haps is not None:
                bits = np.unpackbits(haps, axis=1, count=2 * self.n_samples, bitorder="little")
                hap_index = (2 * sample_index[:, None] + np.arange(2)).ravel()
                haps = np.packbits(bits[:, hap_index], axis=1, bitorder="little")
        return Genotypes(np.ascontiguousarray(packed), new_samples, new_variants,
                         None if haps is None else np.ascontiguousarray(haps), self.source, self.ploidy,
                         dict(self.info))

    def filter(self, maf: float | None = None, max_missing: float | None = None) -> "Genotypes":
        """Keep variants with MAF >= ``maf`` and missing rate <= ``max_missing``."""
        keep = np.ones(self.n_variants, bool)
        if maf is not None:
            with np.errstate(invalid="ignore"):
                keep &= np.nan_to_num(self.maf(), nan=0.0) >= maf
        if max_missing is not None:
            keep &= self.missing_rate_per_variant() <= max_missing
        return self.subset(variants=np.flatnonzero(keep))

    # ------------------------------------------------------------------ blocks of variants
    def blocks(self, chunk: int | None = None, device="cpu", dtype=None) -> Iterator[tuple]:
        """Walk the calls one block of ``chunk`` variants at a time (default :meth:`variants_per_block`), decoded
        on ``device``.

        Yields
        ------
        cols : slice                                   the block's variants
        counts : torch.Tensor, float, shape (b, n_samples)   A2 counts (variant-major), 0 where missing
        observed : torch.Tensor, bool, shape (b, n_samples)
        """
        import torch

        dtype = dtype or torch.float32
        chunk = chunk or self.variants_per_block()
        for start in range(0, self.n_variants, chunk):
            cols = slice(start, min(start + chunk, self.n_variants))
            calls = torch.from_numpy(unpack_calls(np.asarray(self.packed[cols]), self.n_samples)).to(device)
            observed = calls >= 0
            yield cols, calls.clamp_min(0).to(dtype), observed

    # ------------------------------------------------------------------ torch batches
    def batches(self, batch_size: int = 1024, device="cpu", dtype=None, samples=None,
                shuffle: bool = False, generator=None) -> Iterator[tuple]:
        """Iterate over batches of samples as float tensors, unpacked on ``device``.

        Yields
        ------
        index : ndarray, int64, shape (b,)            sample indices of the batch
        counts : torch.Tensor, float, shape (b, n_variants)   A2 counts, 0 where missing
        observed : torch.Tensor, bool, shape (b, n_variants)  False where missing
        """
        import torch

        dtype = dtype or torch.float32
        order = np.arange(self.n_samples) if samples is None else np.asarray(samples)
        if shuffle:
            rng = generator if generator is not None else np.random.default_rng()
            order = order[rng.permutation(len(order))]
        unpacker = DeviceUnpacker(self, device)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            counts, observed = unpacker.unpack(index, dtype)
            yield index, counts, observed


class DeviceUnpacker:
    """The packed calls re-packed sample-major (n_samples x ceil(n_variants / 4) bytes) on a torch device, so that a
    batch of individuals is a row gather, decoded there by :func:`unpack_calls`.

    Built one block of ``chunk`` variants at a time (decode SNP-major, pack along the sample axis), so the build
    reads the calls once and its temporaries stay at ``chunk x n_samples`` bytes.
    """

    def __init__(self, genotypes: Genotypes, device="cpu", chunk: int = 4096):
        import torch

        self.device = torch.device(device)
        self.n_variants = genotypes.n_variants
        chunk = max(4, chunk - chunk % 4)  # whole bytes of the sample-major rows per block
        sample_major = np.empty((genotypes.n_samples, (self.n_variants + 3) // 4), np.uint8)
        for start in range(0, self.n_variants, chunk):
            block = unpack_calls(np.asarray(genotypes.packed[start:start + chunk]), genotypes.n_samples)
            sample_major[:, start // 4:(start + block.shape[0] + 3) // 4] = pack_calls(block, axis=0)
        self.packed = torch.from_numpy(sample_major).to(self.device)

    def unpack(self, index, dtype=None):
        """Counts (float, 0 where missing) and the observed mask of individuals ``index``, both (b, n_variants)."""
        import torch

        rows = self.packed[torch.as_tensor(np.asarray(index), device=self.device)]
        counts = unpack_calls(rows, self.n_variants)
        observed = counts >= 0
        return counts.clamp_min(0).to(dtype or torch.float32), observed
