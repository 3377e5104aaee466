"""The ``genoae`` command line: a thin click shell over the library.  No numerics live here."""
from __future__ import annotations

import sys

import click

from genoae.errors import InputError, UsageError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genoae")
def cli():
    """genoae: neural ADMIXTURE ancestry estimation, VAE synthetic genomes, comparison with classic ADMIXTURE.

    Genotypes are A2 allele counts (PLINK .bim column 6 = VCF ALT), ADMIXTURE's convention.
    """


def main(argv=None):
    """Entry point: input and usage errors become one line on stderr and exit code 2, with no traceback."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except (InputError, UsageError) as error:
        click.echo(f"genoae: error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("genoae: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except FileNotFoundError as error:
        click.echo(f"genoae: error: {error.filename}: no such file", err=True)
        sys.exit(2)
    sys.exit(0)


# ======================================================================== I/O: info, convert
@cli.command()
@click.argument("path", type=click.Path())
def info(path):
    """Summarise a genotype file: samples, variants, chromosomes, missing rate, ploidy/phasing, MAF."""
    from genoae.io import read_genotypes
    from genoae.summary import summarise

    genotypes = read_genotypes(path)
    click.echo(summarise(genotypes))


# ======================================================================== (end of I/O commands)


# ======================================================================== ancestry: admix, project, demo


def _quiet_openmp():
    """Let idle OpenMP threads sleep instead of spin (set before torch loads its OpenMP runtime).

    The EM refinement runs thousands of short parallel loops; with spinning workers, a CPU shared with other
    processes makes them up to 50x slower (measured on 2 busy cores).  A user's own setting wins.
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _device_options(function):
    function = click.option("--threads", type=int, default=None,
                            help="CPU threads for torch (default: torch's).")(function)
    function = click.option("--device", default="auto", show_default=True,
                            help="auto (CUDA when available), cpu or cuda.")(function)
    return function


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-k", "--k", "ks", required=True, help="Number of ancestral populations: 3, a range 2-8, or 2,4,6.")
@click.option("-o", "--out", "prefix", default=None, help="Output prefix (default: the input's name, here).")
@click.option("--seed", type=int, default=42, show_default=True)
@_device_options
@click.option("--epochs", type=int, default=5, show_default=True,
              help="Encoder training epochs (after the EM refinement; the encoder serves genoae project).")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--tol", type=float, default=1e-7, show_default=True,
              help="Stop the EM refinement when the log-likelihood rises by less than TOL x the number of observed "
                   "calls between two checks (every 5 SQUAREM iterations).")
@click.option("--max-iter", type=int, default=1000, show_default=True, help="Most EM (SQUAREM) iterations.")
@click.option("--hidden", type=int, default=64, show_default=True, help="Encoder hidden width.")
@click.option("--cv", type=int, default=0, help="N-fold cross-validation error as ADMIXTURE's --cv (0: off).")
@click.option("--supervised", type=click.Path(), default=None,
              help="ADMIXTURE .pop file: labelled individuals keep their population (K = number of labels).")
@click.option("--precision", type=click.Choice(["auto", "float32", "float64"]), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def admix(input_path, ks, prefix, seed, device, threads, epochs, batch_size, tol, max_iter, hidden, cv, supervised,
          precision, quiet):
    """Estimate ancestry proportions Q and allele frequencies P (neural ADMIXTURE, refined by EM).

    Writes PREFIX.K.Q and PREFIX.K.P (ADMIXTURE's format; P = A2 frequency), PREFIX.K.model.pt + .json,
    PREFIX.h5 and PREFIX.log.
    """
    _quiet_openmp()
    from genoae.admixture import run_admix

    run = run_admix(input_path, ks, prefix=prefix, seed=seed, device=device, threads=threads, epochs=epochs,
                    batch_size=batch_size, tol=tol, max_iter=max_iter, hidden=hidden, cv=cv, supervised=supervised,
                    precision=precision, progress=not quiet, echo=click.echo)
    click.echo(f"wrote {', '.join(str(path) for path in run.files)}")


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--model", "model_path", required=True, type=click.Path(), help="PREFIX.K.model.pt from genoae admix.")
@click.option("-o", "--out", "prefix", required=True, help="Output prefix: writes PREFIX.K.Q and PREFIX.log.")
@_device_options
@click.option("--tol", type=float, default=5e-9, show_default=True,
              help="EM tolerance per observed call (as for admix).")
def project(input_path, model_path, prefix, device, threads, tol):
    """Ancestry proportions of new individuals under a trained model (encoder, then EM with P fixed)."""
    _quiet_openmp()
    from genoae.admixture import run_project

    run_project(input_path, model_path, prefix, device=device, threads=threads, tol=tol, echo=click.echo)


@cli.command()
@click.option("-o", "--out", "out_dir", default="genoae_demo", show_default=True, help="Output folder.")
@click.option("-k", "K", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@_device_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir, K, seed, device, threads, quiet):
    """Run the main job on the shipped 1000 Genomes example (500 individuals x 805 SNPs): Q, P, plot."""
    _quiet_openmp()
    from genoae.admixture import run_demo

    run_demo(out_dir, K=K, seed=seed, device=device, threads=threads, progress=not quiet, echo=click.echo)



# ======================================================================== (end of ancestry commands)


# ======================================================================== comparison: compare, plot


# ======================================================================== (end of comparison commands)


# ======================================================================== synthetic genomes: vae


# ======================================================================== (end of synthetic-genome commands)
