"""``genoae project``: Q of new individuals under a model written by ``genoae admix``, or under any program's P
file (``--p-file`` with the reference's variant table)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genoae.ancestry import NeuralAdmixture, project
from genoae.ancestry.encoder import START_FLOOR
from genoae.device import set_threads
from genoae.errors import InputError, UsageError
from genoae.genotypes import ALLELE_CONVENTION
from genoae.commands.common import check_outputs, check_prefix
from genoae.io import input_files, read_genotypes
from genoae.io.atomic import OutputSet
from genoae.io.model import load_model, match_variants, model_paths
from genoae.io.qp import write_q


def run_project(input_path, model_path, prefix, device: str = "auto", threads: int | None = None,
                tol: float = 5e-9, progress: bool = True, echo=print):
    """``genoae project``: Q for new individuals under a trained model (the encoder's Q, refined with the model's
    P fixed); writes PREFIX.K.Q, PREFIX.h5 and PREFIX.log.

    Returns
    -------
    Q : ndarray (n_samples, K);  loglik : float;  report : genoae.io.model.AlignmentReport
    """
    set_threads(threads)
    prefix = check_prefix(prefix)
    model, metadata = load_model(model_path, NeuralAdmixture)
    K = metadata["K"]
    check_outputs([f"{prefix}.{K}.Q", f"{prefix}.h5", f"{prefix}.log"],
                  input_files(input_path) + list(model_paths(model_path)), results_file=f"{prefix}.h5")
    with OutputSet(prefix) as output:  # Q and log appear together, and one run at a time per prefix
        genotypes, match = _matched_input(input_path, metadata["variants"], "model", echo)
        result = project(model, genotypes, match, tol=tol, device=device, progress=progress)
        encoder_rmse = float(np.sqrt(np.nanmean((result.Q_encoder - result.Q) ** 2)))
        _write_projection(output, prefix, result, genotypes, metadata["variants"], model.P, [
            f"genoae project {input_path} --model {model_path}", str(match.report),
            f"allele convention: {ALLELE_CONVENTION}",
            f"start: the encoder's Q (Q RMSE {encoder_rmse:.4f} from the refined Q), each entry raised to at least "
            f"{START_FLOOR}"])
    echo(f"K={K}\tloglik={result.loglik:.6f}\twrote {prefix}.{K}.Q, {prefix}.h5, {prefix}.log")
    return result.Q, result.loglik, match.report


def _matched_input(input_path, variants, target: str, echo):
    """The input's genotypes (as read: packed, maybe memory-mapped) and where ``variants`` are in them (matched,
    swaps flipped), the match reported; none matched: refused."""
    genotypes = read_genotypes(input_path)
    match = match_variants(genotypes.variants, variants)
    match.report.target = target
    echo(str(match.report))
    if match.report.matched == 0:
        raise InputError(input_path, f"no variant of the data matches the {target}'s variants (by "
                                     f"{match.report.matched_by})")
    return genotypes, match


def _write_projection(output: OutputSet, prefix: str, result, genotypes, variants, P, header: list) -> None:
    """PREFIX.K.Q, PREFIX.h5 (Q of the cohort, the A2 P it was projected onto, on the reference's variants, ℓ)
    and PREFIX.log (``#`` header lines, the refinement, then ℓ) into the run's output set."""
    from genoae.io.results import AdmixtureResult, write_results_h5

    K = result.Q.shape[1]
    n = result.Q.shape[0]
    write_q(result.Q, output.path(f"{prefix}.{K}.Q"))
    settings = {"command": header[0], "projection": True, "iterations": list(result.iterations),
                "seconds": result.seconds}
    write_results_h5(output.path(f"{prefix}.h5"),
                     [AdmixtureResult(Q=result.Q, P=np.asarray(P, np.float64), loglik=result.loglik,
                                      loglik_trace=np.array([result.loglik]), settings=settings)],
                     genotypes.samples, variants, source=genotypes.source)
    header = header + [f"refinement (Q rows, P fixed): {' '.join(map(str, result.iterations))} iterations over "
                       f"{len(result.iterations)} chunk(s); {n} individuals in {result.seconds:.2f} s "
                       f"({n / max(result.seconds, 1e-9):,.0f} per second)"]
    output.path(f"{prefix}.log").write_text("".join(f"# {line}\n" for line in header)
                                            + f"K={K}\tloglik={result.loglik:.6f}\t(the individuals' observed "
                                              f"calls, P fixed)\n")


def reference_variants(path):
    """The variant table P's rows follow: a ``.bim`` (or the ``.bim`` of a ``.bed``/prefix) or a ``.pvar``."""
    from genoae.io.pgen import read_pvar
    from genoae.io.plink import plink_paths, read_bim

    text = str(path)
    if text.endswith(".pvar"):
        return read_pvar(path)[0]
    if text.endswith(".bim"):
        return read_bim(path)
    return read_bim(plink_paths(path)[1])


def p_file_allele(p_path, p_convention=None) -> str:
    """The allele a P file counts: ``p_convention`` when given, else its writer's (ADMIXTURE and genoae A2;
    fastmixture, Neural ADMIXTURE and ADAMIXTURE A1), told as ``compare`` tells it: from the Q file beside it, else
    from the P file's own name and number format."""
    from genoae.compare.runs import DEFAULT_P_ALLELE, detect_source

    if p_convention is not None:
        allele = p_convention.upper()
        if allele not in ("A1", "A2"):
            raise UsageError(f"--p-convention {p_convention!r}: expected A1 or A2")
        return allele
    p_path = Path(p_path)
    q_path = p_path.with_name(p_path.name[:-2] + ".Q") if p_path.name.endswith(".P") else None
    return DEFAULT_P_ALLELE[detect_source(q_path if q_path is not None and q_path.exists() else p_path)]


def run_project_p(input_path, p_path, reference, prefix, p_convention=None, device: str = "auto",
                  threads: int | None = None, tol: float = 5e-9, progress: bool = True, echo=print):
    """``genoae project --p-file``: Q for individuals under any program's P, no network.

    Variants are matched to the reference's (by ID, else by chromosome and position) with allele swaps flipped;
    P is turned to A2 frequencies of the reference's alleles; Q is refined from a uniform start with P fixed.
    Writes PREFIX.K.Q, PREFIX.h5 and PREFIX.log.
    """
    from genoae.ancestry import project_onto_p
    from genoae.io.qp import read_p

    set_threads(threads)
    prefix = check_prefix(prefix)
    variants = reference_variants(reference)
    P = read_p(p_path)
    if P.shape[0] != len(variants):
        raise InputError(p_path, f"P has {P.shape[0]} rows but the reference {reference} lists {len(variants)} "
                                 f"variants (P's rows must follow the reference's variants)")
    K = P.shape[1]
    allele = p_file_allele(p_path, p_convention)
    check_outputs([f"{prefix}.{K}.Q", f"{prefix}.h5", f"{prefix}.log"], input_files(input_path) + [p_path, reference],
                  results_file=f"{prefix}.h5")
    with OutputSet(prefix) as output:
        genotypes, match = _matched_input(input_path, variants, "reference", echo)
        result = project_onto_p(genotypes, 1.0 - P if allele == "A1" else P, match, tol=tol, device=device,
                                progress=progress)
        _write_projection(output, prefix, result, genotypes, variants, 1.0 - P if allele == "A1" else P, [
            f"genoae project {input_path} --p-file {p_path} --reference {reference}", str(match.report),
            f"P read as {allele} frequencies; allele convention of the output: {ALLELE_CONVENTION}",
            "start: uniform Q"])
    echo(f"K={K}\tloglik={result.loglik:.6f}\twrote {prefix}.{K}.Q, {prefix}.h5, {prefix}.log")
    return result.Q, result.loglik, match.report
