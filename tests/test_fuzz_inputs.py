"""Seeded fuzzing of every reader: random edits of .bed/.bim/.fam, VCF, text matrices, HDF5 datasets and model JSON.

Every outcome must be a correct read or an InputError: never another exception, never a silently different shape.
Edits stay inside lines (no line is added or removed), so a read must keep the individuals, and the variants too
unless the reader reports the difference as skipped records.
"""
import json

import numpy as np
import pytest

from genoae.ancestry import NeuralAdmixture
from genoae.errors import InputError
from genoae.genotypes import Genotypes
from genoae.io import read_genotypes, write_genotypes
from genoae.io.model import load_model, save_model

ALPHABET = b"0123456789.-/|:,;ACGTNx \t#<>*eE+"
N_SAMPLES, N_VARIANTS = 14, 30


def base_set():
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 3, (N_SAMPLES, N_VARIANTS)).astype(np.int8)
    counts[rng.random(counts.shape) < 0.05] = -1
    return Genotypes.from_counts(counts)


def edit_inside_lines(data: bytes, rng, n_edits: int, start: int = 0) -> bytes:
    """Replace, delete or insert bytes at random places after ``start``, never touching a newline."""
    out = bytearray(data)
    for _ in range(n_edits):
        i = int(rng.integers(start, len(out)))
        if out[i] == ord("\n"):
            continue
        op = rng.random()
        if op < 0.15:  # a lost separator shifts every field after it
            tabs = [k for k in range(start, len(out)) if out[k] in b"\t "]
            if tabs:
                del out[tabs[int(rng.integers(len(tabs)))]]
        elif op < 0.5:
            out[i] = ALPHABET[int(rng.integers(len(ALPHABET)))]
        elif op < 0.75 and i + 1 < len(out) and out[i + 1] != ord("\n"):
            del out[i]
        else:
            out.insert(i, ALPHABET[int(rng.integers(len(ALPHABET)))])
    return bytes(out)


def read_outcome(path, **kwargs):
    """'refused' for an InputError, else the Genotypes (any other exception propagates and fails the test)."""
    try:
        return read_genotypes(path, quiet=True, **kwargs)
    except InputError as error:
        assert error.path is not None and str(error)
        return "refused"


def skipped_records(geno) -> int:
    text = geno.info.get("skipped records", "0 of 0")
    return int(text.split()[0])


def check_shape(geno, expect_variants=N_VARIANTS):
    assert geno.n_samples == N_SAMPLES, f"read {geno.n_samples} individuals, the file has {N_SAMPLES}"
    assert geno.n_variants + skipped_records(geno) == expect_variants, (
        f"read {geno.n_variants} variants (+{skipped_records(geno)} skipped), the file has {expect_variants}")
    assert set(np.unique(geno.counts())) <= {-1, 0, 1, 2}


@pytest.mark.parametrize("kind", ["bed", "bim", "fam"])
def test_plink_files(tmp_path, kind):
    rng = np.random.default_rng({"bed": 1, "bim": 2, "fam": 3}[kind])
    write_genotypes(base_set(), tmp_path / "base.bed")
    original = (tmp_path / f"base.{kind}").read_bytes()
    outcomes = {"read": 0, "refused": 0}
    for trial in range(60):
        edited = edit_inside_lines(original, rng, int(rng.integers(1, 4)), start=3 if kind == "bed" else 0)
        if kind == "bed":  # binary: any byte may change, the header included now and then
            edited = bytearray(edited[:len(original)].ljust(len(original), b"\0"))
            if trial % 10 == 0:
                edited[int(rng.integers(0, 3))] = int(rng.integers(256))
            edited = bytes(edited)
        (tmp_path / f"base.{kind}").write_bytes(edited)
        geno = read_outcome(tmp_path / "base.bed")
        if geno == "refused":
            outcomes["refused"] += 1
        else:
            check_shape(geno)
            outcomes["read"] += 1
    (tmp_path / f"base.{kind}").write_bytes(original)
    assert outcomes["read"] > 0 and (kind == "bed" or outcomes["refused"] > 0), outcomes


def test_vcf(tmp_path):
    rng = np.random.default_rng(4)
    write_genotypes(base_set(), tmp_path / "base.vcf")
    original = (tmp_path / "base.vcf").read_bytes()
    body = original.index(b"\n#CHROM")
    outcomes = {"read": 0, "refused": 0}
    for _ in range(150):
        (tmp_path / "f.vcf").write_bytes(edit_inside_lines(original, rng, int(rng.integers(1, 5)), start=body))
        geno = read_outcome(tmp_path / "f.vcf")
        if geno == "refused":
            outcomes["refused"] += 1
        else:
            check_shape(geno)
            outcomes["read"] += 1
    assert outcomes["read"] > 5 and outcomes["refused"] > 10, outcomes


def test_text_matrix(tmp_path):
    rng = np.random.default_rng(5)
    counts = base_set().counts()
    original = "".join(" ".join("NA" if v < 0 else str(v) for v in row) + "\n" for row in counts).encode()
    outcomes = {"read": 0, "refused": 0}
    for _ in range(150):
        (tmp_path / "f.txt").write_bytes(edit_inside_lines(original, rng, 1))
        geno = read_outcome(tmp_path / "f.txt")
        if geno == "refused":
            outcomes["refused"] += 1
        else:
            # one edit inside a line: the same matrix shape, or (a token split or joined) refused as ragged
            assert (geno.n_samples, geno.n_variants) == counts.shape, (geno.n_samples, geno.n_variants)
            outcomes["read"] += 1
    assert outcomes["read"] > 5 and outcomes["refused"] > 10, outcomes


def test_hdf5_datasets(tmp_path):
    import h5py

    rng = np.random.default_rng(6)
    write_genotypes(base_set(), tmp_path / "base.h5")
    with h5py.File(tmp_path / "base.h5", "r") as h5:
        names = [name for name in ("calldata/GT", "samples", "variants/POS", "variants/CHROM", "variants/REF",
                                   "variants/ALT", "variants/ID", "sample_info/SEX")]
    values = [lambda: np.float64(1.5), lambda: rng.integers(-3, 300, (N_VARIANTS,)),
              lambda: rng.integers(-1, 3, (N_VARIANTS, N_SAMPLES, 2)).astype(np.int64),
              lambda: rng.random((N_VARIANTS, N_SAMPLES)), lambda: np.array([b"x"] * N_SAMPLES),
              lambda: np.zeros((2, 2, 2, 2), np.int8), lambda: np.array([b"a", b"b"]), lambda: None]
    outcomes = {"read": 0, "refused": 0}
    for trial in range(60):
        path = tmp_path / f"f{trial}.h5"
        path.write_bytes((tmp_path / "base.h5").read_bytes())
        name = names[int(rng.integers(len(names)))]
        value = values[int(rng.integers(len(values)))]()
        with h5py.File(path, "r+") as h5:
            del h5[name]
            if value is None:
                h5.create_group(name)
            else:
                h5[name] = value
        geno = read_outcome(path)
        if geno == "refused":
            outcomes["refused"] += 1
        else:
            assert geno.n_samples == N_SAMPLES and geno.n_variants + skipped_records(geno) == N_VARIANTS
            outcomes["read"] += 1
    assert outcomes["refused"] > 10, outcomes


def test_model_json(tmp_path):
    rng = np.random.default_rng(8)
    geno = base_set()
    model = NeuralAdmixture(N_VARIANTS, 2)
    save_model(tmp_path / "m.2.model.pt", model, geno.variants)
    original = (tmp_path / "m.2.model.json").read_bytes()
    outcomes = {"read": 0, "refused": 0}
    for _ in range(150):
        (tmp_path / "m.2.model.json").write_bytes(edit_inside_lines(original, rng, int(rng.integers(1, 4))))
        try:
            loaded, metadata = load_model(tmp_path / "m.2.model.pt", NeuralAdmixture)
        except InputError:
            outcomes["refused"] += 1
            continue
        assert loaded.K == 2 and len(metadata["variants"]) == N_VARIANTS
        json.loads((tmp_path / "m.2.model.json").read_text())
        outcomes["read"] += 1
    assert outcomes["read"] > 5 and outcomes["refused"] > 5, outcomes
