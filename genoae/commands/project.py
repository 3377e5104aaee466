"""``genoae project``: Q of new individuals under a model written by ``genoae admix``, or under any program's P
file (``--p-file`` with the reference's variant table)."""
from __future__ import annotations

from pathlib import Path

from genoae.ancestry import NeuralAdmixture, project
from genoae.device import set_threads
from genoae.errors import InputError, UsageError
from genoae.genotypes import ALLELE_CONVENTION
from genoae.commands.common import check_outputs, check_prefix
from genoae.io import input_files, read_genotypes
from genoae.io.atomic import OutputSet
from genoae.io.model import align_to_model, load_model, model_paths
from genoae.io.qp import write_q


def run_project(input_path, model_path, prefix, device: str = "auto", threads: int | None = None,
                tol: float = 5e-9, echo=print):
    """``genoae project``: Q for new individuals under a trained model; writes PREFIX.K.Q and PREFIX.log.

    Returns
    -------
    Q : ndarray (n_samples, K);  loglik : float;  report : genoae.io.model.AlignmentReport
    """
    set_threads(threads)
    prefix = check_prefix(prefix)
    model, metadata = load_model(model_path, NeuralAdmixture)
    K = metadata["K"]
    check_outputs([f"{prefix}.{K}.Q", f"{prefix}.log"], input_files(input_path) + list(model_paths(model_path)))
    with OutputSet(prefix) as output:  # Q and log appear together, and one run at a time per prefix
        aligned, report = _aligned_input(input_path, metadata["variants"], "model", echo)
        Q, loglik, _ = project(model, aligned, tol=tol, device=device)
        _write_projection(output, prefix, Q, loglik, [f"genoae project {input_path} --model {model_path}",
                                                      str(report), f"allele convention: {ALLELE_CONVENTION}"])
    echo(f"K={K}\tloglik={loglik:.6f}\twrote {prefix}.{K}.Q")
    return Q, loglik, report


def _aligned_input(input_path, variants, target: str, echo):
    """The input's genotypes on ``variants`` (matched, swaps flipped), the match reported; none matched: refused."""
    aligned, report = align_to_model(read_genotypes(input_path), variants)
    report.target = target
    echo(str(report))
    if report.matched == 0:
        raise InputError(input_path, f"no variant of the data matches the {target}'s variants (by "
                                     f"{report.matched_by})")
    return aligned, report


def _write_projection(output: OutputSet, prefix: str, Q, loglik: float, header: list) -> None:
    """PREFIX.K.Q and PREFIX.log (``#`` header lines, then ℓ) into the run's output set."""
    K = Q.shape[1]
    write_q(Q, output.path(f"{prefix}.{K}.Q"))
    output.path(f"{prefix}.log").write_text("".join(f"# {line}\n" for line in header)
                                            + f"K={K}\tloglik={loglik:.6f}\t(the individuals' observed calls, "
                                              f"P fixed)\n")


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
                  threads: int | None = None, tol: float = 5e-9, echo=print):
    """``genoae project --p-file``: Q for individuals under any program's P, no network.

    Variants are matched to the reference's (by ID, else by chromosome and position) with allele swaps flipped;
    P is turned to A2 frequencies of the reference's alleles; Q is refined from a uniform start with P fixed.
    Writes PREFIX.K.Q and PREFIX.log.
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
    check_outputs([f"{prefix}.{K}.Q", f"{prefix}.log"], input_files(input_path) + [p_path, reference])
    with OutputSet(prefix) as output:
        aligned, report = _aligned_input(input_path, variants, "reference", echo)
        Q, loglik = project_onto_p(aligned, 1.0 - P if allele == "A1" else P, tol=tol, device=device)
        _write_projection(output, prefix, Q, loglik, [
            f"genoae project {input_path} --p-file {p_path} --reference {reference}", str(report),
            f"P read as {allele} frequencies; allele convention of the output: {ALLELE_CONVENTION}"])
    echo(f"K={K}\tloglik={loglik:.6f}\twrote {prefix}.{K}.Q")
    return Q, loglik, report
