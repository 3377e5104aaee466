"""Ancestry results: the dataclass every command passes around, and its HDF5 file (``PREFIX.h5``).

HDF5 layout (one file, several K)::

    /                       attrs: format="genoae-admixture", version, allele_convention, source
    /samples/iid, /samples/fid                  (n_samples,) strings
    /variants/chrom, pos, id, a1, a2            (n_variants,)
    /K{k}/Q                 (n_samples, k) float64
    /K{k}/P                 (n_variants, k) float64, A2 frequencies
    /K{k}/loglik_trace      (n_steps,) float64
    /K{k}                   attrs: K, loglik, cv_error (NaN if not run), settings (JSON), p_allele ("A2")
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from genoae.errors import InputError
from genoae.genotypes import ALLELE_CONVENTION, Samples, Variants
from genoae.io.atomic import atomic_path

FORMAT_NAME = "genoae-admixture"
FORMAT_VERSION = 1


@dataclass
class AdmixtureResult:
    """Q, P and how they were obtained, for one K.

    Attributes
    ----------
    Q : ndarray, float64, shape (n_samples, K)       ancestry proportions, rows sum to 1
    P : ndarray, float64, shape (n_variants, K)      A2 allele frequencies per cluster
    loglik : float                                    final log-likelihood on ADMIXTURE's scale
    loglik_trace : ndarray, float64                   ℓ after each logged step
    """

    Q: np.ndarray
    P: np.ndarray
    loglik: float = float("nan")
    loglik_trace: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cv_error: float = float("nan")
    settings: dict = field(default_factory=dict)
    p_allele: str = "A2"

    @property
    def K(self) -> int:
        return int(self.Q.shape[1])


def _strings(values) -> np.ndarray:
    return np.array([str(v).encode() for v in values], dtype=object)


def write_results_h5(path, results: list[AdmixtureResult], samples: Samples, variants: Variants,
                     source: str = "") -> Path:
    """Write one or more K's results with the sample and variant tables, atomically."""
    path = Path(path)
    string_dtype = h5py.string_dtype()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["format"] = FORMAT_NAME
            h5.attrs["version"] = FORMAT_VERSION
            h5.attrs["allele_convention"] = ALLELE_CONVENTION
            h5.attrs["source"] = str(source)
            grp = h5.create_group("samples")
            grp.create_dataset("iid", data=_strings(samples.iid), dtype=string_dtype)
            grp.create_dataset("fid", data=_strings(samples.fid), dtype=string_dtype)
            grp = h5.create_group("variants")
            for name in ("chrom", "id", "a1", "a2"):
                grp.create_dataset(name, data=_strings(getattr(variants, name)), dtype=string_dtype)
            grp.create_dataset("pos", data=variants.pos)
            for result in results:
                k_grp = h5.create_group(f"K{result.K}")
                k_grp.create_dataset("Q", data=result.Q, compression="gzip")
                k_grp.create_dataset("P", data=result.P, compression="gzip")
                k_grp.create_dataset("loglik_trace", data=np.asarray(result.loglik_trace, dtype=np.float64))
                k_grp.attrs["K"] = result.K
                k_grp.attrs["loglik"] = float(result.loglik)
                k_grp.attrs["cv_error"] = float(result.cv_error)
                k_grp.attrs["settings"] = json.dumps(result.settings, default=str)
                k_grp.attrs["p_allele"] = result.p_allele
    return path


def is_results_file(path) -> bool:
    """Whether ``path`` is an HDF5 file that :func:`write_results_h5` wrote (its ``format`` attribute)."""
    try:
        with h5py.File(path, "r") as h5:
            return h5.attrs.get("format") == FORMAT_NAME
    except OSError:
        return False


def read_results_h5(path) -> tuple[dict[int, AdmixtureResult], Samples, Variants]:
    """Read a ``PREFIX.h5`` written by :func:`write_results_h5`.

    Returns
    -------
    results : dict K -> AdmixtureResult
    samples : Samples
    variants : Variants
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "missing results file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise InputError(path, f"not an HDF5 file ({error})") from None
    with h5:
        if h5.attrs.get("format") != FORMAT_NAME:
            raise InputError(path, f"not a genoae ancestry result (format attribute is {h5.attrs.get('format')!r})")
        decode = lambda ds: np.array([x.decode() if isinstance(x, bytes) else str(x) for x in ds[()]])
        samples = Samples(iid=decode(h5["samples/iid"]), fid=decode(h5["samples/fid"]))
        variants = Variants(chrom=decode(h5["variants/chrom"]), pos=h5["variants/pos"][()],
                            id=decode(h5["variants/id"]), a1=decode(h5["variants/a1"]), a2=decode(h5["variants/a2"]))
        results = {}
        for name in sorted(k for k in h5.keys() if k.startswith("K")):
            grp = h5[name]
            results[int(grp.attrs["K"])] = AdmixtureResult(
                Q=grp["Q"][()], P=grp["P"][()], loglik=float(grp.attrs["loglik"]),
                loglik_trace=grp["loglik_trace"][()], cv_error=float(grp.attrs["cv_error"]),
                settings=json.loads(grp.attrs["settings"]), p_allele=str(grp.attrs.get("p_allele", "A2")))
    return results, samples, variants
