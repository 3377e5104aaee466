import numpy as np
import pytest
import torch

from genoae.genotypes import DeviceUnpacker, Genotypes, pack_calls, pack_haplotype_bits, unpack_calls


@pytest.mark.parametrize("n_samples", [1, 3, 4, 5, 17])
def test_pack_unpack_round_trip(n_samples):
    rng = np.random.default_rng(n_samples)
    counts = rng.integers(-1, 3, size=(11, n_samples)).astype(np.int8)
    packed = pack_calls(counts)
    assert packed.shape == (11, (n_samples + 3) // 4)
    np.testing.assert_array_equal(unpack_calls(packed, n_samples), counts)


@pytest.mark.parametrize("n_samples, n_chosen", [(1, 1), (5, 3), (17, 17), (23, 9), (64, 130)])
def test_take_samples_moves_each_code_to_its_new_place(n_samples, n_chosen):
    """take_samples equals decoding, indexing and packing again, in any order and with repeats; the padding
    calls of the last byte are 0b00 as PLINK writes them, and an index out of range is refused."""
    from genoae.genotypes import take_samples

    rng = np.random.default_rng(n_samples + n_chosen)
    counts = rng.integers(-1, 3, size=(37, n_samples)).astype(np.int8)
    index = rng.integers(0, n_samples, size=n_chosen)
    chosen = take_samples(pack_calls(counts), n_samples, index)
    np.testing.assert_array_equal(chosen, pack_calls(counts[:, index]))
    with pytest.raises(IndexError):
        take_samples(pack_calls(counts), n_samples, np.array([n_samples]))


def _naive_pack(counts):
    """PLINK's layout spelled out: call i of a row at bits 2 (i % 4) of byte i // 4."""
    code = {0: 0b00, 1: 0b10, 2: 0b11}
    out = np.zeros((counts.shape[0], (counts.shape[1] + 3) // 4), np.uint8)
    for row in range(counts.shape[0]):
        for i, value in enumerate(counts[row]):
            out[row, i // 4] |= (code.get(int(value), 0b01)) << (2 * (i % 4))
    return out


@pytest.mark.parametrize("n_samples", [1, 3, 4, 5, 17])
def test_pack_calls_matches_naive_layout_along_either_axis(n_samples):
    rng = np.random.default_rng(n_samples)
    counts = rng.integers(-3, 3, size=(9, n_samples))  # any negative value is missing
    expected = _naive_pack(counts)
    np.testing.assert_array_equal(pack_calls(counts), expected)
    np.testing.assert_array_equal(pack_calls(np.ascontiguousarray(counts.T), axis=0), expected)
    with pytest.raises(ValueError):
        pack_calls(np.full((2, 2), 3))


@pytest.mark.parametrize("n_rows", [1, 7, 8, 9, 20])
def test_pack_haplotype_bits_matches_numpy_packbits(n_rows):
    bits = np.random.default_rng(n_rows).integers(0, 2, size=(n_rows, 6)).astype(np.uint8)
    np.testing.assert_array_equal(pack_haplotype_bits(bits), np.packbits(bits.T, axis=1, bitorder="little"))


def test_unpack_calls_decodes_torch_tensors_as_numpy_arrays():
    packed = pack_calls(np.random.default_rng(0).integers(-1, 3, size=(5, 11)))
    decoded = unpack_calls(torch.from_numpy(packed), 11)
    assert decoded.dtype == torch.int8
    np.testing.assert_array_equal(decoded.numpy(), unpack_calls(packed, 11))


@pytest.mark.parametrize("chunk", [4, 8, 4096])
def test_device_unpacker_rows_are_individuals(chunk):
    counts = np.random.default_rng(1).integers(-1, 3, size=(13, 22)).astype(np.int8)  # samples x variants
    geno = Genotypes.from_counts(counts)
    unpacker = DeviceUnpacker(geno, "cpu", chunk=chunk)
    values, observed = unpacker.unpack([12, 0, 5], torch.float64)
    np.testing.assert_array_equal(observed.numpy(), counts[[12, 0, 5]] >= 0)
    np.testing.assert_array_equal(values.numpy(), np.clip(counts[[12, 0, 5]], 0, None))


def test_plink_code_meaning():
    # 00 hom A1 -> 0, 01 missing, 10 het -> 1, 11 hom A2 -> 2, sample 0 in the low bits
    packed = np.array([[0b11_10_01_00]], dtype=np.uint8)
    np.testing.assert_array_equal(unpack_calls(packed, 4), [[0, -1, 1, 2]])


def test_frequencies_filters_and_subset():
    counts = np.array([[0, 2, 1, -1], [0, 2, 2, -1], [0, 2, -1, -1]], dtype=np.int8)  # samples x variants
    geno = Genotypes.from_counts(counts)
    np.testing.assert_allclose(geno.allele_freqs()[:3], [0.0, 1.0, 0.75])
    assert np.isnan(geno.allele_freqs()[3])
    np.testing.assert_allclose(geno.missing_rate_per_variant(), [0, 0, 1 / 3, 1])
    kept = geno.filter(maf=0.01, max_missing=0.5)
    assert kept.n_variants == 1 and kept.variants.id[0] == "snp3"
    sub = geno.subset(samples=[2, 0])
    np.testing.assert_array_equal(sub.counts(), counts[[2, 0]])
    assert list(sub.samples.iid) == ["ind3", "ind1"]


def test_haplotypes_kept_and_subset():
    rng = np.random.default_rng(0)
    haps = rng.integers(0, 2, size=(5, 2, 9))
    geno = Genotypes.from_haplotypes(haps)
    assert geno.phased
    np.testing.assert_array_equal(geno.counts(), haps.sum(axis=1))
    np.testing.assert_array_equal(geno.haplotypes(), haps)
    np.testing.assert_array_equal(geno.subset(samples=[4, 1]).haplotypes(), haps[[4, 1]])
    np.testing.assert_array_equal(geno.subset(variants=[0, 3]).haplotypes(), haps[:, :, [0, 3]])


def test_batches_unpack_on_device_with_mask():
    rng = np.random.default_rng(1)
    counts = rng.integers(-1, 3, size=(10, 13)).astype(np.int8)
    geno = Genotypes.from_counts(counts)
    seen = []
    for index, x, observed in geno.batches(batch_size=4, device="cpu"):
        assert x.dtype == torch.float32 and observed.dtype == torch.bool
        np.testing.assert_array_equal(observed.numpy(), counts[index] >= 0)
        np.testing.assert_array_equal(np.where(counts[index] >= 0, counts[index], 0), x.numpy())
        seen.extend(index.tolist())
    assert seen == list(range(10))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64])
def test_from_haplotypes_any_integer_dtype(dtype):
    # uint8 haplotypes once made the counts uint64, where -1 (missing) overflows under NumPy >= 2.5
    haps = np.array([[[0, 1, 1], [1, 1, 0]]], dtype=dtype)
    geno = Genotypes.from_haplotypes(haps)
    assert geno.counts().dtype == np.int8
    np.testing.assert_array_equal(geno.counts(), [[1, 2, 1]])
