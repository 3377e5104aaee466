"""Ancestry runs read from any program's files (``.Q``/``.P``, genoae ``.h5``, prefixes), P converted to A2."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genoae.errors import InputError, UsageError
from genoae.io.qp import read_p, read_q
from genoae.io.results import read_results_h5

SOURCES = ("admixture", "fastmixture", "neural-admixture", "adamixture", "genoae")
P_CONVENTIONS = ("A1", "A2")
DEFAULT_P_ALLELE = {"admixture": "A2", "genoae": "A2", "fastmixture": "A1", "neural-admixture": "A1",
                    "adamixture": "A1"}
ADAMIXTURE_Q_FLOOR = 1e-5  # ADAMIXTURE clips Q to [1e-5, 1 - 1e-5]; a softmax (Neural ADMIXTURE) never sits on it

_FASTMIXTURE_NAME = re.compile(r"^(?P<prefix>.+)\.K(?P<K>\d+)(?:\.s(?P<seed>\d+))?\.[QP]$")
_ADMIXTURE_NAME = re.compile(r"^(?P<prefix>.+)\.(?P<K>\d+)\.Q$")



@dataclass
class Run:
    """One ancestry estimate for one K, in genoae's conventions.

    Attributes
    ----------
    name : str                   label used in tables and plots (``hapmap3.3``, ``run.h5:K3``)
    source : str                 one of :data:`SOURCES`
    Q : ndarray, float64, shape (n_samples, K)
        As read, columns in the file's order.
    P : ndarray, float64, shape (n_variants, K) or None
        **A2** allele frequencies (converted if the file held A1), columns in the file's order.
    p_allele : str               allele the P *file* counted ("A1" or "A2"), as assumed when reading
    q_path, p_path : str
    order : ndarray, int, shape (K,)
        Column permutation from alignment: aligned column ``c`` is file column ``order[c]``.
    samples : ndarray of str or None    individual IDs, when the source stores them (.h5)
    variant_rows : ndarray of int or None
        The genotype variants P's rows stand for, when P covers a subset (ADAMIXTURE keeps the autosomes only).
    """

    name: str
    source: str
    Q: np.ndarray
    P: np.ndarray | None = None
    p_allele: str = "A2"
    q_path: str = ""
    p_path: str = ""
    samples: np.ndarray | None = None
    order: np.ndarray | None = None
    auto_orientation: bool = False
    notes: list = field(default_factory=list)
    variant_rows: np.ndarray | None = None

    @property
    def K(self) -> int:
        return int(self.Q.shape[1])

    @property
    def Q_aligned(self) -> np.ndarray:
        return self.Q if self.order is None else self.Q[:, self.order]

    @property
    def P_aligned(self) -> np.ndarray | None:
        if self.P is None:
            return None
        return self.P if self.order is None else self.P[:, self.order]


def detect_source(path) -> str:
    """Guess which program wrote a run from its file name (and, for ``PREFIX.K.Q``, its number format); a ``.P``
    file is told apart the same way.

    ``.h5`` → genoae; ``PREFIX.K{K}[.s{seed}].Q`` (or ``.P``) → fastmixture; ``PREFIX.K.Q`` written in scientific
    notation (NumPy's default ``savetxt``) → adamixture when some Q value sits exactly on ADAMIXTURE's clip at 1e-5,
    else neural-admixture (both count A1 in P); other ``PREFIX.K.Q`` → admixture (genoae's text files share
    ADMIXTURE's format and convention, so the distinction does not matter).
    """
    path = Path(path)
    name = path.name
    if name.lower().endswith((".h5", ".hdf5")):
        return "genoae"
    if _FASTMIXTURE_NAME.match(name):
        return "fastmixture"
    if path.exists():
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        if re.search(r"\d[eE][+-]\d", first):
            if name.endswith(".P"):  # only a Q can sit on ADAMIXTURE's clip; both count A1 in P anyway
                return "neural-admixture"
            try:
                values = read_q(path)
            except InputError:
                return "neural-admixture"
            on_floor = np.isclose(values, ADAMIXTURE_Q_FLOOR, rtol=1e-9, atol=0).any()
            return "adamixture" if on_floor else "neural-admixture"
    return "admixture"


def _check_source(source: str | None) -> str | None:
    if source is None:
        return None
    source = source.lower().replace("_", "-")
    if source == "neural":
        source = "neural-admixture"
    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}: expected one of {', '.join(SOURCES)}")
    return source


def _check_convention(p_convention: str | None) -> str | None:
    if p_convention is None:
        return None
    value = p_convention.upper()
    if value not in P_CONVENTIONS + ("AUTO",):
        raise UsageError(f"unknown P convention {p_convention!r}: expected A1, A2 or auto")
    return value


def _p_beside(q_path: Path) -> Path | None:
    candidate = q_path.with_name(q_path.name[:-2] + ".P") if q_path.name.endswith(".Q") else None
    return candidate if candidate is not None and candidate.exists() else None


def _orient_p(P: np.ndarray, p_allele: str) -> np.ndarray:
    """P as A2 frequencies."""
    return 1.0 - P if p_allele == "A1" else P


def _read_text_run(q_path: Path, source: str | None, p_convention: str | None) -> Run:
    source = _check_source(source) or detect_source(q_path)
    Q = read_q(q_path)
    p_path = _p_beside(q_path)
    P = None
    p_allele = DEFAULT_P_ALLELE[source] if p_convention in (None, "AUTO") else p_convention
    notes = []
    if p_path is not None:
        P = read_p(p_path)
        if P.shape[1] != Q.shape[1] and P.shape[0] == Q.shape[1]:
            # some tools save P as K × M
            P = P.T.copy()
            notes.append(f"{p_path.name} is K x M; transposed")
        if P.shape[1] != Q.shape[1]:
            raise InputError(p_path, f"P has {P.shape[1]} columns but {q_path.name} has K = {Q.shape[1]}")
        P = _orient_p(P, p_allele)
    else:
        notes.append("no P file beside the Q file: likelihood and F_ST not computed")
    if source == "fastmixture":  # fastmixture and fastmixture2 share names and conventions; the log tells which
        log = q_path.with_name(q_path.name[:-2] + ".log")
        if log.exists():
            with open(log, "r", encoding="utf-8", errors="replace") as handle:
                first = handle.readline().strip()
            if first.startswith("fastmixture"):
                notes.append(f"written by {first}")
    # "auto" is resolved against the genotypes in check_orientation
    return Run(name=q_path.name[:-2] if q_path.name.endswith(".Q") else q_path.name, source=source, Q=Q, P=P,
               p_allele=p_allele, q_path=str(q_path), p_path="" if p_path is None else str(p_path),
               auto_orientation=p_convention == "AUTO", notes=notes)


def _read_h5_runs(path: Path, ks, p_convention: str | None) -> list[Run]:
    results, samples, _ = read_results_h5(path)
    runs = []
    for K in sorted(results):
        if ks and K not in ks:
            continue
        result = results[K]
        file_allele = result.p_allele if p_convention in (None, "AUTO") else p_convention
        run = Run(name=f"{path.stem}.{K}", source="genoae", Q=np.asarray(result.Q, np.float64),
                  P=_orient_p(np.asarray(result.P, np.float64), file_allele), p_allele=file_allele,
                  q_path=f"{path}:K{K}", p_path=f"{path}:K{K}", samples=np.asarray(samples.iid),
                  auto_orientation=p_convention == "AUTO")
        runs.append(run)
    if not runs:
        wanted = f" for K in {sorted(ks)}" if ks else ""
        raise InputError(path, f"no results{wanted} in this file (it has K = {sorted(results)})")
    return runs


def load_runs(spec, source: str | None = None, p_convention: str | None = None, ks=None) -> list[Run]:
    """Read the run(s) that ``spec`` names.

    Parameters
    ----------
    spec : str or Path
        A ``.Q`` file (its ``.P`` is looked for beside it), a genoae ``.h5`` (every K inside), or a prefix: every
        ``PREFIX.K.Q`` / ``PREFIX.K{K}[.s{seed}].Q`` file.
    source : str, optional
        ``admixture``, ``fastmixture``, ``neural-admixture`` or ``genoae``; guessed from the file names when absent.
    p_convention : {"A1", "A2", "auto"}, optional
        Which allele the P file counts; the source's default when absent; ``auto`` picks the orientation that fits
        the genotypes better (resolved in :func:`check_orientation`).
    ks : iterable of int, optional
        Keep only these K.

    Returns
    -------
    list of Run, ordered by K.
    """
    source = _check_source(source)
    p_convention = _check_convention(p_convention)
    ks = set(int(k) for k in ks) if ks else None
    path = Path(spec)
    if path.suffix.lower() in (".h5", ".hdf5"):
        if source not in (None, "genoae"):
            raise UsageError(f"{path}: .h5 results are genoae's; --source {source} does not apply")
        return _read_h5_runs(path, ks, p_convention)
    if path.is_file():
        if path.name.endswith(".P"):
            q_path = path.with_name(path.name[:-2] + ".Q")
            if not q_path.exists():
                raise InputError(path, "a P file was given but no Q file lies beside it")
            path = q_path
        run = _read_text_run(path, source, p_convention)
        if ks and run.K not in ks:
            raise InputError(path, f"this run has K = {run.K}, not one of the K asked for ({sorted(ks)})")
        return [run]
    # a prefix: collect its Q files
    folder = path.parent if str(path.parent) else Path(".")
    stem = path.name
    found = []
    if folder.is_dir():
        for candidate in sorted(folder.iterdir()):
            if not candidate.name.startswith(stem + ".") or not candidate.name.endswith(".Q"):
                continue
            match = _FASTMIXTURE_NAME.match(candidate.name) or _ADMIXTURE_NAME.match(candidate.name)
            if match is None or match.group("prefix") != stem:
                continue
            found.append((int(match.group("K")), candidate))
    if not found:
        raise InputError(path, "no such run: expected a .Q file, a genoae .h5, or a prefix of PREFIX.K.Q files")
    runs = []
    for K, q_path in sorted(found, key=lambda item: (item[0], item[1].name)):
        if ks and K not in ks:
            continue
        runs.append(_read_text_run(q_path, source, p_convention))
    if not runs:
        raise InputError(path, f"no run for K in {sorted(ks)} (found K = {sorted({k for k, _ in found})})")
    return runs


def _per_run(values, n_specs: int, what: str) -> list:
    """One value for every run spec: none given → None each; one → all; else exactly one per spec."""
    values = list(values or ())
    if not values:
        return [None] * n_specs
    if len(values) == 1:
        return values * n_specs
    if len(values) != n_specs:
        raise UsageError(f"{len(values)} --{what} values for {n_specs} runs: give one for all, or one per run")
    return values


def load_run_specs(specs, sources=(), p_conventions=(), ks=None) -> list[Run]:
    """Read every run named on the command line (see :func:`load_runs`), ``--source``/``--p-convention`` given
    once for all or once per spec."""
    runs = []
    for spec, source, convention in zip(specs, _per_run(sources, len(specs), "source"),
                                        _per_run(p_conventions, len(specs), "p-convention")):
        runs.extend(load_runs(spec, source=source, p_convention=convention, ks=ks))
    # the same file given twice would compare a run with itself under one name; keep names unique
    seen = {}
    for run in runs:
        if run.name in seen:
            seen[run.name] += 1
            run.name = f"{run.name}#{seen[run.name]}"
        else:
            seen[run.name] = 1
    return runs


