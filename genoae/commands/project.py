"""``genoae project``: Q of new individuals under a model written by ``genoae admix``."""
from __future__ import annotations

from genoae.ancestry import NeuralAdmixture, project
from genoae.device import set_threads
from genoae.errors import InputError
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
        genotypes = read_genotypes(input_path)
        aligned, report = align_to_model(genotypes, metadata["variants"])
        echo(str(report))
        if report.matched == 0:
            raise InputError(input_path, "no variant of the data matches the model's variants")
        Q, loglik, _ = project(model, aligned, tol=tol, device=device)
        write_q(Q, output.path(f"{prefix}.{K}.Q"))
        output.path(f"{prefix}.log").write_text(
            f"# genoae project {input_path} --model {model_path}\n# {report}\n"
            f"# allele convention: {ALLELE_CONVENTION}\n"
            f"K={K}\tloglik={loglik:.6f}\t(new individuals' observed calls, model P fixed)\n")
    echo(f"K={K}\tloglik={loglik:.6f}\twrote {prefix}.{K}.Q")
    return Q, loglik, report


