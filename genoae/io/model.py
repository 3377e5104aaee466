"""Trained Neural ADMIXTURE models on disk: ``PREFIX.K.model.pt`` (a torch state dict of plain tensors, which
``torch.load(..., weights_only=True)`` reads; written and read here by :mod:`genoae.io.torchfile`, without torch and
without unpickling anything but tensors) beside ``PREFIX.K.model.json`` (what the weights mean: K, sizes, the variant
table the model was trained on, allele convention, settings), and the alignment of new genotypes to a model's variants.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genoae.device import to_numpy
from genoae.errors import InputError
from genoae.genotypes import ALLELE_CONVENTION, Genotypes, Variants
from genoae.io.atomic import atomic_open, atomic_path
from genoae.io.torchfile import read_state_dict, write_state_dict

FORMAT_NAME = "genoae-neural-admixture"
FORMAT_VERSION = 2  # 2: the encoder is one linear layer (K × n_variants); 1 had a hidden layer


def model_paths(path) -> tuple[Path, Path]:
    """``(weights .pt, metadata .json)`` for a path given as either file or as their common stem."""
    text = str(path)
    for suffix in (".pt", ".json"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return Path(text + ".pt"), Path(text + ".json")


def save_model(path, model, variants: Variants, populations=(), settings: dict | None = None,
               loglik: float = float("nan")) -> tuple[Path, Path]:
    """Write the state dict and its JSON metadata atomically.

    Parameters
    ----------
    path : str or Path
        ``PREFIX.K.model.pt`` (or the stem ``PREFIX.K.model``).
    model : genoae.ancestry.NeuralAdmixture (or anything with ``K``, ``n_variants`` and a ``state_dict()`` of
        NumPy arrays or torch tensors)
    variants : Variants
        The variants the model was trained on, in its input order.
    """
    weights, meta = model_paths(path)
    state = {name: to_numpy(tensor) for name, tensor in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        write_state_dict(tmp, state)
    metadata = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "K": model.K,
        "n_variants": model.n_variants, "allele_convention": ALLELE_CONVENTION, "p_allele": "A2",
        "populations": list(populations), "loglik": float(loglik), "settings": settings or {},
        "weights": weights.name,
        "variants": {name: getattr(variants, name).tolist() for name in ("chrom", "pos", "id", "a1", "a2")},
    }
    with atomic_open(meta, "w") as handle:
        # one string, by json's C encoder (json.dump streams through the pure-Python one: ~1 s per 50,000 variants)
        handle.write(json.dumps(metadata, default=str))
    return weights, meta


def load_model(path, model_class):
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    model_class : type
        The network class, called as ``model_class(n_variants, K)`` (genoae's is
        :class:`genoae.ancestry.NeuralAdmixture`); the reader knows the file layout, not the network.

    Returns
    -------
    model : model_class
    metadata : dict  (``metadata["variants"]`` is a :class:`Variants`)
    """
    weights, meta = model_paths(path)
    for needed in (weights, meta):
        if not needed.exists():
            raise InputError(needed, "missing model file (a model is PREFIX.K.model.pt beside PREFIX.K.model.json)")
    try:
        metadata = json.loads(meta.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as error:
        raise InputError(meta, f"not valid JSON ({error.msg})", error.lineno) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise InputError(meta, f"not a genoae model (format is {found!r}, expected {FORMAT_NAME!r})")
    variants = _check_metadata(metadata, meta)
    try:
        state = read_state_dict(weights)
    except Exception as error:  # a damaged zip, a refused pickle, a missing entry: several types
        raise InputError(weights, f"cannot read the model weights ({type(error).__name__}): not a state dict of "
                                  f"tensors written by genoae admix") from None
    if not isinstance(state, dict):
        raise InputError(weights, "the weights file does not hold a state dict")
    model = model_class(metadata["n_variants"], metadata["K"])
    try:
        model.load_state_dict(state)
    except (ValueError, TypeError, KeyError) as error:
        first = str(error).strip().splitlines()
        raise InputError(weights, f"weights do not match the metadata in {meta.name}: "
                                  f"{first[-1].strip() if first else type(error).__name__}") from None
    metadata["variants"] = variants
    return model, metadata


def _check_metadata(metadata: dict, path) -> Variants:
    """Check the fields :func:`load_model` uses; return the variant table.  Each fault is one InputError."""
    version = metadata.get("version")
    if version != FORMAT_VERSION:
        hint = " (an earlier genoae's encoder: re-run genoae admix to write this version)" if version == 1 else ""
        raise InputError(path, f"model file version {version!r}, this genoae reads version {FORMAT_VERSION}{hint}")
    for key in ("K", "n_variants"):
        value = metadata.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(path, f"{key!r} is {value!r}: expected a positive integer")
    populations = metadata.get("populations", [])
    if not isinstance(populations, list) or not all(isinstance(p, str) for p in populations):
        raise InputError(path, f"'populations' is {populations!r}: expected a list of names")
    if populations and len(populations) != metadata["K"]:
        raise InputError(path, f"{len(populations)} populations for K = {metadata['K']}")
    table = metadata.get("variants")
    columns = ("chrom", "pos", "id", "a1", "a2")
    if not isinstance(table, dict) or set(table) != set(columns):
        found = sorted(table) if isinstance(table, dict) else type(table).__name__
        raise InputError(path, f"'variants' must map {', '.join(columns)} to lists (found {found})")
    for name in columns:
        values = table[name]
        if not isinstance(values, list) or len(values) != metadata["n_variants"]:
            length = len(values) if isinstance(values, list) else type(values).__name__
            raise InputError(path, f"variants.{name} has {length} entries, n_variants is {metadata['n_variants']}")
        wanted = int if name == "pos" else str
        bad = next((v for v in values if not isinstance(v, wanted) or isinstance(v, bool)), None)
        if bad is not None:
            raise InputError(path, f"variants.{name} holds {bad!r}: expected {'integers' if name == 'pos' else 'text'}")
    return Variants(chrom=np.array(table["chrom"], dtype=str), pos=np.array(table["pos"], dtype=np.int64),
                    id=np.array(table["id"], dtype=str), a1=np.array(table["a1"], dtype=str),
                    a2=np.array(table["a2"], dtype=str))


@dataclass
class AlignmentReport:
    """How new genotypes were matched to a model's variants."""

    n_model: int
    n_data: int
    matched: int
    flipped: int
    allele_mismatch: int
    absent: int
    matched_by: str
    target: str = "model"  # what the variants were matched to: a model, or a reference's variant table

    def __str__(self) -> str:
        return (f"{self.matched:,} of the {self.target}'s {self.n_model:,} variants matched by {self.matched_by} "
                f"({self.flipped:,} with A1/A2 swapped and flipped); {self.absent:,} absent from the data and "
                f"{self.allele_mismatch:,} with other alleles are treated as missing; "
                f"{self.n_data - self.matched:,} data variants not in the {self.target} are ignored")


@dataclass
class VariantMatch:
    """Where each of a model's variants sits in a data set: ``rows[j]`` is the data's row for model variant ``j``
    (−1 where it is absent or has other alleles), ``flip[j]`` whether its A1/A2 are swapped there."""

    rows: np.ndarray
    flip: np.ndarray
    report: AlignmentReport

    @classmethod
    def identity(cls, variants: Variants) -> "VariantMatch":
        """Data that already hold exactly ``variants``, in order (no keys looked up: two records at one position
        with unset IDs stay two)."""
        n = len(variants)
        return cls(np.arange(n, dtype=np.int64), np.zeros(n, bool), AlignmentReport(n, n, n, 0, 0, 0, "order"))


def match_variants(data: Variants, model_variants: Variants) -> VariantMatch:
    """Match a model's (or a reference's) variants to a data set's.

    Variants are matched by ID when both tables have unique, informative IDs, else by (chromosome, position).
    A matched variant whose alleles are swapped (data A1/A2 = model A2/A1) is flipped; other allele mismatches,
    and model variants absent from the data, are treated as missing calls.
    """
    by_id = _unique_informative(model_variants.id) and _unique_informative(data.id)
    if by_id:
        data_keys, model_keys, matched_by = list(data.id), list(model_variants.id), "ID"
    else:
        data_keys = list(zip(data.chrom.tolist(), data.pos.tolist()))
        model_keys = list(zip(model_variants.chrom.tolist(), model_variants.pos.tolist()))
        matched_by = "chromosome and position"
    where = {}
    for j, key in enumerate(data_keys):
        where.setdefault(key, j)
    rows = np.array([where.get(key, -1) for key in model_keys], np.int64)
    found = rows >= 0
    index = np.where(found, rows, 0)
    a1, a2 = data.a1[index], data.a2[index]
    same = found & (a1 == model_variants.a1) & (a2 == model_variants.a2)
    swapped = found & ~same & (a1 == model_variants.a2) & (a2 == model_variants.a1)
    mismatch = found & ~same & ~swapped
    rows[mismatch] = -1
    report = AlignmentReport(len(model_variants), len(data), int((same | swapped).sum()), int(swapped.sum()),
                             int(mismatch.sum()), int((~found).sum()), matched_by)
    return VariantMatch(rows, swapped, report)


# PLINK 2-bit codes under an A1/A2 swap: 00 (A1/A1) <-> 11 (A2/A2); 01 (missing) and 10 (A1/A2) stay
_FLIP_CODE = np.array([3, 1, 2, 0], np.uint8)
_FLIP_BYTE = np.array([sum(int(_FLIP_CODE[(b >> (2 * s)) & 3]) << (2 * s) for s in range(4)) for b in range(256)],
                      np.uint8)
_ALL_MISSING = np.uint8(0x55)


def aligned_block(genotypes: Genotypes, match: VariantMatch, start: int = 0, stop: int | None = None) -> np.ndarray:
    """The packed calls of individuals ``start … stop − 1`` on the matched variants, straight from the packed bytes
    (rows picked, swapped ones flipped through a byte table, unmatched ones missing; nothing decoded).

    ``start`` must be a multiple of 4 (a byte boundary of the SNP-major rows).

    Returns
    -------
    ndarray, uint8, shape (len(match.rows), ceil((stop − start) / 4))
    """
    stop = genotypes.n_samples if stop is None else stop
    if start % 4:
        raise ValueError("start must be a multiple of 4")
    byte_start, byte_stop = start // 4, (stop + 3) // 4
    found = match.rows >= 0
    block = np.full((len(match.rows), byte_stop - byte_start), _ALL_MISSING, np.uint8)
    block[found] = genotypes.packed[match.rows[found], byte_start:byte_stop]
    flipped = np.flatnonzero(match.flip)
    block[flipped] = _FLIP_BYTE[block[flipped]]
    tail = (stop - start) % 4
    if tail:  # padding bits after the last individual are 0, as in a .bed
        block[:, -1] &= np.uint8((1 << (2 * tail)) - 1)
    return block


def align_to_model(genotypes: Genotypes, model_variants: Variants) -> tuple[Genotypes, AlignmentReport]:
    """``genotypes`` on a model's variants (:func:`match_variants`), built from the packed bytes.

    Returns
    -------
    aligned : Genotypes  with ``model_variants`` as its variant table
    report : AlignmentReport
    """
    match = match_variants(genotypes.variants, model_variants)
    return (Genotypes(aligned_block(genotypes, match), genotypes.samples, model_variants, source=genotypes.source),
            match.report)


def _unique_informative(ids) -> bool:
    ids = np.asarray(ids)
    return len(ids) > 0 and not np.isin(ids, [".", "", "0"]).any() and len(np.unique(ids)) == len(ids)
