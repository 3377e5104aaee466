"""The ``genoae`` command line: a thin click shell over the library.  No numerics live here."""
from __future__ import annotations

import sys
import warnings

import click

from genoae.errors import InputError, RankError, UsageError

POSITIVE = click.IntRange(min=1)
COUNT = click.IntRange(min=0)
SEED = click.IntRange(min=0)


class FiniteFloat(click.FloatRange):
    """A float range that also refuses nan and infinity (click's FloatRange lets nan through every bound)."""

    name = "number"

    def convert(self, value, param, ctx):
        import math

        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


POSITIVE_FLOAT = FiniteFloat(min=0, min_open=True)


class NumberList(click.ParamType):
    """Comma-separated finite numbers, e.g. ``0.7,1,1.3``; ``none`` for an empty list."""

    name = "numbers"

    def convert(self, value, param, ctx):
        import math

        if isinstance(value, tuple):
            return value
        if str(value).strip().lower() == "none":
            return ()
        numbers = []
        for item in str(value).split(","):
            try:
                number = float(item)
            except ValueError:
                self.fail(f"{item.strip()!r} in {value!r} is not a number (expected e.g. 0.7,1,1.3)", param, ctx)
            if not math.isfinite(number):
                self.fail(f"{item.strip()!r} is not a finite number", param, ctx)
            numbers.append(number)
        return tuple(numbers)


class OffOrAtLeastTwo(click.ParamType):
    """0 (off) or at least 2: CV folds and bootstrap replicates (one of either estimates nothing)."""

    name = "number"

    def __init__(self, what: str, usual: str):
        self.what, self.usual = what, usual

    def convert(self, value, param, ctx):
        number = click.INT.convert(value, param, ctx)
        if number == 1 or number < 0:
            self.fail(f"{number} {self.what}: give 0 (off) or at least 2 ({self.usual})", param, ctx)
        return number


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genoae")
@click.pass_context
def cli(context):
    """genoae: ancestry estimation (ADMIXTURE's model by maximum likelihood, an encoder network for projection),
    VAE synthetic genomes, comparison of ancestry results from ADMIXTURE, fastmixture, Neural ADMIXTURE, ADAMIXTURE
    and genoae.

    Genotypes are A2 allele counts (PLINK .bim column 6 = VCF ALT), ADMIXTURE's convention.
    """
    if _rank_prefix() and context.invoked_subcommand != "admix":
        raise UsageError(f"genoae {context.invoked_subcommand} runs in one process: only genoae admix is sharded "
                         f"across torchrun's processes (run this without torchrun)")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings reach the user as one line each, without Python's file and line."""
    click.echo(f"genoae: warning: {message}", err=True)


def _rank_prefix() -> str:
    """``rank R: `` in a process that torchrun started as one of several (its errors name it), else nothing."""
    import os

    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return f"rank {int(os.environ.get('RANK', '0'))}: "
    except ValueError:
        pass
    return ""


def main(argv=None):
    """Entry point: input and usage errors become one line on stderr and exit code 2, with no traceback;
    warnings become one line each.  Under torchrun each line names the rank that says it."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            cli.main(args=argv, standalone_mode=False)
    except (InputError, UsageError) as error:
        click.echo(f"genoae: error: {_rank_prefix()}{error}", err=True)
        sys.exit(2)
    except RankError as error:
        if not error.quiet:  # a quiet one: the rank that failed has printed the cause
            click.echo(f"genoae: error: {_rank_prefix()}{error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("genoae: aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as error:  # a bare group: its help, as click prints it
        error.show()
        sys.exit(error.exit_code)
    except click.UsageError as error:  # bad option values included: one line, as for input errors
        command = error.ctx.command_path if error.ctx is not None else "genoae"
        click.echo(f"genoae: error: {error.format_message()} (see {command} --help)", err=True)
        sys.exit(2)
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
@click.option("--legend", type=click.Path(), default=None,
              help="Legend file (id position a0 a1) for .hapt input; default: one found beside the file.")
@click.option("--region", default=None, help="VCF/BCF only: read only chr:start-end (bcftools' syntax) from the "
              "file's index (.tbi/.csi), through bcftools.")
def info(path, legend, region):
    """Summarise a genotype file: samples, variants, chromosomes, missing rate, ploidy/phasing, MAF.

    Reads PLINK .bed/.bim/.fam, VCF/.vcf.gz, HDF5 (scikit-allel layout), .npy, whitespace text and .hapt.
    Skipped VCF/HDF5 records (multi-allelic, indel, symbolic, no GT) are counted in the output.
    """
    from genoae.commands.info import info_file

    click.echo(info_file(path, legend=legend or "auto", region=region))


@cli.command()
@click.argument("source", type=click.Path())
@click.argument("target", type=click.Path())
@click.option("--maf", type=FiniteFloat(0, 0.5), default=None, help="Keep variants with MAF >= this.")
@click.option("--max-missing", type=FiniteFloat(0, 1), default=None,
              help="Keep variants with a missing-call rate <= this.")
@click.option("--legend", type=click.Path(), default=None, help="Legend file for .hapt input.")
@click.option("--region", default=None, help="VCF/BCF only: read only chr:start-end (bcftools' syntax) from the "
              "file's index (.tbi/.csi), through bcftools.")
def convert(source, target, maf, max_missing, legend, region):
    """Convert SOURCE to TARGET, formats chosen by extension.

    Outputs: .bed (PLINK; also .bim/.fam), .vcf / .vcf.gz (BGZF; phased when the input has haplotypes),
    .h5 (scikit-allel layout: calldata/GT, samples, variants/*), .npy (samples x SNPs A2 counts, -1 missing).
    """
    from genoae.commands.info import convert_file

    written = convert_file(source, target, maf=maf, max_missing=max_missing, legend=legend or "auto", region=region)
    note = f"; {written.info['filtered out']} filtered out" if "filtered out" in written.info else ""
    click.echo(f"wrote {target}: {written.n_samples} samples x {written.n_variants} variants"
               f"{' (phased)' if written.phased else ''}{note}")


# ======================================================================== (end of I/O commands)


# ======================================================================== ancestry: admix, project, demo


def _quiet_openmp():
    """Let idle OpenMP threads sleep instead of spin (set before torch loads its OpenMP runtime).

    The torch passes (CUDA, the encoder) run many short parallel loops; with spinning workers, a CPU shared with
    other processes makes them up to 50x slower (measured on 2 busy cores).  A user's own setting wins.
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _device_options(function):
    function = click.option("-j", "--threads", type=POSITIVE, default=None,
                            help="CPU threads (default: every CPU, or NUMBA_NUM_THREADS); -j as ADMIXTURE's.")(function)
    function = click.option("--device", default="auto", show_default=True,
                            help="auto (CUDA when available), cpu or cuda.")(function)
    return function


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-k", "--k", "ks", required=True, multiple=True,
              help="Number of ancestral populations: 3, a range 2-8 or 2..8, or a list 2,4,6 (repeatable).")
@click.option("-o", "--out", "prefix", default=None, help="Output prefix (default: the input's name, here).")
@click.option("-s", "--seed", type=SEED, default=42, show_default=True, help="Random seed (-s as ADMIXTURE's).")
@_device_options
@click.option("--tol", type=POSITIVE_FLOAT, default=1e-9, show_default=True,
              help="Stop the refinement when an iteration raises the log-likelihood by less than TOL x the number "
                   "of observed calls.")
@click.option("-C", "loglik_tol", type=POSITIVE_FLOAT, default=None,
              help="ADMIXTURE's -C: stop the refinement when an iteration raises the log-likelihood by less than "
                   "this (absolute; ADMIXTURE's default 1e-4); replaces --tol, which is the same per observed call.")
@click.option("-c", "minor_loglik_tol", type=POSITIVE_FLOAT, default=None,
              help="ADMIXTURE's -c: the same for the re-fits of CV folds and bootstrap replicates (default: as the "
                   "fit).")
@click.option("--max-iter", type=POSITIVE, default=1000, show_default=True, help="Most refinement iterations.")
@click.option("--init", "init", type=click.Choice(["als", "kmeans"]), default="als", show_default=True,
              help="Where the EM starts: alternating least squares on the truncated SVD (as fastmixture and "
                   "ADAMIXTURE start), or k-means on principal components.")
@click.option("--starts", type=POSITIVE, default=1, show_default=True,
              help="Refine from this many starts, each drawn afresh (the first is a one-start run's, the others "
                   "from a rougher SVD, so that they spread over the likelihood's local maxima), and keep the "
                   "highest likelihood: what running several seeds does, in one run, at this many times the fit's "
                   "time; each start's log-likelihood is logged.  Unsupervised runs.")
@click.option("--cv", type=OffOrAtLeastTwo("folds", "ADMIXTURE users take 5 or 10"), default=0, is_flag=False,
              flag_value=5,
              help="N-fold cross-validation error as ADMIXTURE's --cv / --cv=N (bare --cv: 5 folds; 0: off).")
@click.option("-B", "--bootstrap", type=OffOrAtLeastTwo("replicates", "ADMIXTURE's default is 200"), default=0,
              is_flag=False, flag_value=200,
              help="ADMIXTURE's -B[N]: N moving-block bootstrap replicates over SNPs (bare -B: 200); writes "
                   "PREFIX.K.Q_se and PREFIX.K.Q_bias.")
@click.option("--supervised", type=click.Path(), default=None,
              help="ADMIXTURE .pop file: labelled individuals keep their population (K = number of labels).")
@click.option("--precision", type=click.Choice(["auto", "float32", "float64"]), default="auto", show_default=True)
@click.option("--region", default=None, help="VCF/BCF only: read only chr:start-end (bcftools' syntax) from the "
              "file's index (.tbi/.csi), through bcftools.")
@click.option("--reference-fraction", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=None,
              help="For large N: fit first on this fraction of the individuals (drawn with --seed), project the "
                   "others onto that fit, then refine on all from there (unsupervised runs).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def admix(input_path, ks, prefix, seed, device, threads, tol, loglik_tol, minor_loglik_tol,
          max_iter, init, starts, cv, bootstrap, supervised, precision, region, reference_fraction, quiet):
    """Estimate ancestry proportions Q and allele frequencies P by maximum likelihood (ADMIXTURE's model).

    Q and P maximise the likelihood by block relaxation (a Newton step per row of Q and of P, as ADMIXTURE;
    EM steps on CUDA) accelerated by quasi-Newton extrapolation, over the packed 2-bit calls, started from an
    ALS factorisation of the truncated SVD (or k-means on principal components, --init kmeans).  The encoder
    network (genotypes -> Q, decoder P) is then set from that P in closed form (a weighted least-squares layer
    and a softmax); it changes no output here: it gives `genoae project` its starting Q.
    Writes PREFIX.K.Q and PREFIX.K.P (ADMIXTURE's format; P = A2 frequency), PREFIX.K.model.pt + .json (the
    network), PREFIX.h5 and PREFIX.log.

    Past one machine: launched by torchrun (e.g. `torchrun --standalone --nproc-per-node 2 --no-python genoae
    admix data.bed -k 3`), each process fits its own range of the SNPs (of a .bed, .pgen, HDF5, VCF Zarr or .npy;
    Gloo on CPUs, NCCL with one GPU per process) and the result equals the one-process fit up to float rounding
    and the stopping tolerance; rank 0 writes.
    """
    _quiet_openmp()
    from genoae.commands.admix import run_admix

    run = run_admix(input_path, ks, prefix=prefix, seed=seed, device=device, threads=threads,
                    tol=tol, max_iter=max_iter, init=init, cv=cv,
                    supervised=supervised, precision=precision, progress=not quiet, echo=click.echo,
                    loglik_tol=loglik_tol, minor_loglik_tol=minor_loglik_tol, bootstrap=bootstrap, region=region,
                    reference_fraction=reference_fraction, starts=starts)
    if run.files:  # a sharded run: rank 0 wrote them
        click.echo(f"wrote {', '.join(str(path) for path in run.files)}")


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--model", "model_path", type=click.Path(), default=None, help="PREFIX.K.model.pt from genoae admix.")
@click.option("--p-file", "p_path", type=click.Path(), default=None,
              help="Instead of a model: a .P file of ADMIXTURE, fastmixture, Neural ADMIXTURE, ADAMIXTURE or genoae "
                   "(rows = the --reference's variants); Q is refined from a uniform start with P fixed.")
@click.option("--reference", type=click.Path(), default=None,
              help="With --p-file: the variants P's rows follow (REF.bim, REF.bed or a prefix, REF.pvar).")
@click.option("--p-convention", default=None, type=click.Choice(["A1", "A2"], case_sensitive=False),
              help="With --p-file: the allele P counts (default: its writer's, from the file names and format).")
@click.option("-o", "--out", "prefix", required=True,
              help="Output prefix: writes PREFIX.K.Q, PREFIX.h5 and PREFIX.log.")
@_device_options
@click.option("--tol", type=POSITIVE_FLOAT, default=5e-9, show_default=True,
              help="Refinement tolerance per observed call (as for admix).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def project(input_path, model_path, p_path, reference, p_convention, prefix, device, threads, tol, quiet):
    """Ancestry proportions of new individuals: under a trained model (its encoder's Q, then the refinement of Q
    with P fixed), or under any program's P file (--p-file with --reference; no network, uniform start).
    The cohort is read in chunks of individuals straight from its packed calls.

    Variants are matched to the model's or the reference's by ID (else chromosome and position); A1/A2 swaps are
    flipped, other allele mismatches and absent variants count as missing, and the match is reported.
    """
    _quiet_openmp()
    if (model_path is None) == (p_path is None):
        raise UsageError("project: give either --model PREFIX.K.model.pt or --p-file FILE.P with --reference")
    if p_path is not None:
        if reference is None:
            raise UsageError("--p-file needs --reference: the .bim/.bed/.pvar whose variants P's rows follow")
        from genoae.commands.project import run_project_p

        run_project_p(input_path, p_path, reference, prefix, p_convention=p_convention, device=device,
                      threads=threads, tol=tol, progress=not quiet, echo=click.echo)
        return
    from genoae.commands.project import run_project

    run_project(input_path, model_path, prefix, device=device, threads=threads, tol=tol, progress=not quiet,
                echo=click.echo)


@cli.command()
@click.option("-o", "--out", "out_dir", default="genoae_demo", show_default=True, help="Output folder.")
@click.option("-k", "K", type=POSITIVE, default=5, show_default=True)
@click.option("--seed", type=SEED, default=42, show_default=True)
@_device_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir, K, seed, device, threads, quiet):
    """Run the main job on the shipped 1000 Genomes example (500 individuals x 805 SNPs): Q, P, plot."""
    _quiet_openmp()
    from genoae.commands.demo import run_demo

    run_demo(out_dir, K=K, seed=seed, device=device, threads=threads, progress=not quiet, echo=click.echo)



# ======================================================================== (end of ancestry commands)


# ======================================================================== comparison: compare, plot


@cli.command()
@click.argument("genotypes", type=click.Path())
@click.argument("runs", nargs=-1, required=True)
@click.option("--pop", "pop_path", type=click.Path(), default=None,
              help="Population labels: FID IID POP table (or sample/pop), or one label per line.")
@click.option("--source", "sources", multiple=True,
              help="admixture | fastmixture | neural-admixture | adamixture | genoae; once for all runs or once per "
                   "run (default: guessed from the file names).")
@click.option("--p-convention", "p_conventions", multiple=True,
              help="Allele the P files count: A1 | A2 | auto; once for all runs or once per run "
                   "(default per source: ADMIXTURE/genoae A2, fastmixture/Neural ADMIXTURE A1).")
@click.option("-k", "ks", multiple=True, help="Keep only these K: 3, a range 2-5 or 2..5, or a list 2,3,5 "
              "(repeatable).")
@click.option("-o", "--out", "report", type=click.Path(), default=None,
              help="Write REPORT.json, REPORT_structure.png and REPORT_pca.png.")
@click.option("--no-plots", is_flag=True, help="With -o, write the JSON only.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda (for the likelihood).")
@click.option("--pop-column", default=None, help="The label column of a --pop table (e.g. super_pop of the 1000 "
              "Genomes tables); default: the first of POP, population, super_pop, ... present.")
def compare(genotypes, runs, pop_path, sources, p_conventions, ks, report, no_plots, device, pop_column):
    """Compare ancestry runs (ADMIXTURE, fastmixture, Neural ADMIXTURE, ADAMIXTURE, genoae) on the same GENOTYPES.

    Each RUN is a .Q file (its .P beside it), a genoae .h5 (every K inside) or a prefix (every PREFIX.K.Q).
    Clusters are aligned (Hungarian matching within K, chained K -> K+1 across K); each run gets its
    log-likelihood on ADMIXTURE's scale and F_ST between clusters; each same-K pair gets RMSE, mean absolute
    difference, Jensen-Shannon divergence and per-cluster correlation of Q.
    """
    from genoae.commands.compare import compare_files, write_report
    from genoae.compare import format_report
    from genoae.device import choose_device

    with warnings.catch_warnings():
        warnings.simplefilter("always")  # every run's warning, not just the first of each kind
        comparison = compare_files(genotypes, runs, pop_path=pop_path, sources=sources,
                                   p_conventions=p_conventions, ks=ks, device=choose_device(device), report=report,
                                   pop_column=pop_column)
    click.echo(format_report(comparison))
    if report:
        for path in write_report(comparison, report, plots=not no_plots, device=choose_device(device)):
            click.echo(f"wrote {path}", err=True)


@cli.command()
@click.argument("runs", nargs=-1)
@click.option("--pop", "pop_path", type=click.Path(), default=None,
              help="Population labels (groups the bars; colours the PCA).")
@click.option("-k", "ks", multiple=True, help="K to draw, one panel each: 3, a range 2-5 or 2..5, or a list "
              "2,3,5 (repeatable).")
@click.option("--pca", "pca_genotypes", type=click.Path(), default=None,
              help="Draw a PCA of these genotypes instead (coloured by --pop, else by the dominant cluster "
                   "of the largest-K run given).")
@click.option("--source", "sources", multiple=True, help="As for compare (only the Q files are used).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the randomized SVD (PCA).")
@click.option("--title", default=None, help="Figure title.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda (for the PCA).")
@click.option("-o", "--out", "out", type=click.Path(), required=True, help="FIG.png, FIG.pdf or FIG.svg.")
@click.option("--pop-column", default=None, help="The label column of a --pop table (e.g. super_pop of the 1000 "
              "Genomes tables); default: the first of POP, population, super_pop, ... present.")
@click.option("--pop-order", default=None, help="Order of the populations in a structure plot: file (default: "
              "as in the --pop file, grouped by super-population when it has that column), clusters (by dominant "
              "cluster), or POP1,POP2,...")
def plot(runs, pop_path, ks, pca_genotypes, sources, seed, title, device, out, pop_column, pop_order):
    """Structure (stacked-bar) plot of ancestry runs, or with --pca a PCA scatter of genotypes.

    RUNS are .Q files, genoae .h5 files or prefixes, as for compare; several K are stacked as panels with
    colours kept consistent by aligning K -> K+1.
    """
    from genoae.device import choose_device
    from genoae.commands.plot import plot_pca_files, plot_structure_files

    if pca_genotypes:
        path = plot_pca_files(pca_genotypes, out, pop_path=pop_path, run_specs=runs, ks=ks, sources=sources,
                              seed=seed, title=title, device=choose_device(device), pop_column=pop_column)
    else:
        if not runs:
            raise UsageError("plot: give at least one run (.Q, .h5 or prefix), or --pca GENOTYPES")
        path = plot_structure_files(runs, out, pop_path=pop_path, ks=ks, sources=sources, title=title,
                                    pop_column=pop_column, pop_order=pop_order)
    click.echo(f"wrote {path}", err=True)



# ======================================================================== (end of comparison commands)


# ======================================================================== synthetic genomes: vae

@cli.group()
def vae():
    """Synthetic genomes: train a population-conditioned VAE, sample from it, evaluate realism and privacy."""


@vae.command("train")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--pop", "labels", type=click.Path(), help="Population labels (table with an ID column, or one per "
              "line); the model becomes conditional on them.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Model file to write (e.g. model.pt).")
@click.option("--mode", type=click.Choice(["auto", "haplotype", "genotype"]), default="auto", show_default=True,
              help="haplotype = Bernoulli per SNP on phased haplotypes; genotype = categorical 0/1/2.")
@click.option("--epochs", type=POSITIVE, default=None, help="Training epochs at most (default 150; with --privacy "
              "30, all run).")
@click.option("--latent-dim", "latent_channels", type=POSITIVE, default=8, show_default=True,
              help="Local latent channels per SNP block.")
@click.option("--global-dim", type=POSITIVE, default=16, show_default=True, help="Global latent dimension.")
@click.option("--hidden", type=POSITIVE, default=32, show_default=True, help="Channels of the convolutions.")
@click.option("--block-size", type=POSITIVE, default=64, show_default=True, help="SNPs per block.")
@click.option("--prior-window", type=POSITIVE, default=16, show_default=True,
              help="Blocks the autoregressive latent prior looks back over.")
@click.option("--prior-components", type=POSITIVE, default=4, show_default=True,
              help="Gaussians in each conditional of the latent prior (a mixture; 1 = a single Gaussian).")
@click.option("--prior-hidden", type=POSITIVE, default=None, help="Width of the latent prior network (default: "
              "--hidden).")
@click.option("--codebook-size", type=COUNT, default=0, show_default=True,
              help="0: continuous local latents.  N > 0: discrete ones (a VQ-VAE), N codes per block with a "
              "categorical autoregressive prior over them; not with --privacy.")
@click.option("--beta", type=FiniteFloat(min=0), default=1.0, show_default=True, help="KL weight after warm-up.")
@click.option("--warmup", "warmup_epochs", type=COUNT, default=5, show_default=True, help="KL warm-up epochs.")
@click.option("--batch-size", type=POSITIVE, default=None, help="Rows a step (default 64); with --privacy the "
              "expected people a step (default 256).")
@click.option("--lr", "learning_rate", type=POSITIVE_FLOAT, default=None, help="AdamW learning rate (default 0.002; "
              "0.01 with --privacy).")
@click.option("--weight-decay", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="AdamW weight decay (a pull of every weight toward 0 each step).")
@click.option("--patience", type=POSITIVE, default=10, show_default=True, help="Early-stopping patience (epochs; "
              "not with --privacy).")
@click.option("--validation", "validation_fraction", type=FiniteFloat(min=0, max=1, max_open=True), default=None,
              help="Share of individuals held out for early stopping (default 0.1; 0 with --privacy, whose "
              "held-out people are only monitored).")
@click.option("--privacy", "privacy_epsilon", type=POSITIVE_FLOAT, default=None, metavar="EPSILON",
              help="Train with DP-SGD to an (EPSILON, --delta) differential-privacy guarantee per person (Opacus's "
              "accountant): per-person gradients clipped to --clip-norm plus calibrated Gaussian noise, all --epochs "
              "run (no early stopping).  Smaller is more private.")
@click.option("--delta", "privacy_delta", type=POSITIVE_FLOAT, default=None,
              help="--privacy: the guarantee's delta (default min(1e-5, 1 / (10 people)); below 1 / people).")
@click.option("--clip-norm", type=POSITIVE_FLOAT, default=1.0, show_default=True,
              help="--privacy: bound on one person's gradient (L2 norm).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Starting weights, split and batches; a "
              "--privacy run draws its noise and batches from the OS instead (secret, so not reproducible).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--threads", type=POSITIVE, default=None, help="CPU threads for torch.")
@click.option("--pop-column", default=None, help="The label column of a --pop table (e.g. super_pop of the 1000 "
              "Genomes tables); default: the first of POP, population, super_pop, ... present.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def vae_train(input_path, labels, output, quiet, pop_column, **params):
    """Train a VAE on INPUT (VCF, PLINK, HDF5, .hapt ...) and save it to MODEL."""
    from click.core import ParameterSource

    from genoae.commands.vae import train_file

    context = click.get_current_context()

    def given(name):
        return context.get_parameter_source(name) != ParameterSource.DEFAULT

    dp_options = [flag for name, flag in (("privacy_delta", "--delta"), ("clip_norm", "--clip-norm")) if given(name)]
    if params["privacy_epsilon"] is None and dp_options:
        raise click.UsageError(f"{' and '.join(dp_options)} set DP-SGD: give --privacy EPSILON with them")
    if params["privacy_epsilon"] is not None and given("patience"):
        raise click.UsageError("--patience sets early stopping, which a --privacy training does not do (it runs all "
                               "its --epochs)")
    estimator = train_file(input_path, output, labels=labels, progress=not quiet, pop_column=pop_column, **params)
    history = estimator.history_
    pops = f"{len(estimator.populations_)} populations" if estimator.populations_ else "unconditional"
    if estimator.privacy_ is not None:
        kept = f"all run (private: no early stopping); {estimator.privacy_.summary()}"
    elif history.best_epoch:
        kept = f"best held-out loss {history.validation[history.best_epoch - 1]:.2f} at epoch {history.best_epoch}"
    else:  # early stopping only starts once the KL weight is final
        kept = (f"all within the KL warm-up, so the last epoch is kept (held-out loss "
                f"{history.validation[-1]:.2f})")
    click.echo(f"trained {estimator.mode_} VAE ({pops}, {estimator.variants_.pos.size} variants): "
               f"{len(history.beta)} epochs, {kept}, {history.seconds:.0f} s -> {output}")


@vae.command("sample")
@click.argument("models", metavar="MODEL...", nargs=-1, required=True, type=click.Path())
@click.option("-n", "n", type=POSITIVE, default=None, help="Individuals to draw (split over populations in training "
              "proportions for a conditional model).")
@click.option("--pop", "populations", default=None, help="Individuals per population, e.g. YRI=500,CEU=500.")
@click.option("-o", "--output", required=True, type=click.Path(), help="OUT.vcf.gz, OUT.h5 or OUT.bed.")
@click.option("--temperature", type=FiniteFloat(min=0), default=1.0, show_default=True,
              help="Scale of the latent draws (a model with --codebook-size: the code prior's logits are divided "
              "by it, so below 1 keeps each haplotype on fewer code paths).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--threads", type=POSITIVE, default=None)
@click.option("--admixed", default=None, help="Admixed individuals instead: the source populations and their "
              "proportions, e.g. YRI=0.8,CEU=0.2; writes OUT.true.Q and OUT.lai.tsv beside OUT.")
@click.option("--generations", type=POSITIVE_FLOAT, default=None,
              help="--admixed: generations since the admixture pulse (ancestry tracts shorten as it grows); "
                   "default 8.")
@click.option("--recombination-map", type=click.Path(), default=None,
              help="--admixed: genetic map (PLINK .map, chrom bp cM, or HapMap layout); default: the variants' "
                   "cM, else 1 cM/Mb.")
@click.option("--shrink", type=FiniteFloat(0, 1), default=0.0, show_default=True,
              help="Privacy knob: condition each population on (1 - S) x itself + S x its group (all populations, "
                   "or --shrink-groups), blurring population-specific signal; see scripts/BENCHMARKS_VAE.md.")
@click.option("--shrink-groups", type=click.Path(), default=None,
              help="--shrink toward the super-population: a labels table with a population and a super-population "
                   "column (e.g. the 1000 Genomes panel).")
@click.option("--admixed-dirichlet", type=POSITIVE_FLOAT, default=None,
              help="--admixed: each individual's proportions drawn from Dirichlet(A x the proportions) "
                   "(default: the same proportions for all).")
def vae_sample(models, n, populations, output, temperature, seed, device, threads, admixed, generations,
               recombination_map, shrink, shrink_groups, admixed_dirichlet):
    """Draw synthetic individuals named synth_<pop>_<i> from MODEL, or with --admixed admixed individuals
    (admixed_<i>) whose haplotypes are mosaics of population-conditioned synthetic haplotypes, with their true
    ancestry (OUT.true.Q) and local-ancestry tracts (OUT.lai.tsv).  Several MODELs (one per chromosome or
    region) are sampled together as one genome."""
    from genoae.commands.vae import sample_admixed_file, sample_file

    model = list(models)  # one file, or one per chromosome or region

    if admixed is not None:
        if shrink or shrink_groups:
            raise UsageError("--shrink is for population samples, not --admixed")
        if populations:
            raise UsageError("--admixed and --pop: give one (--admixed draws admixed individuals, -n of them)")
        if n is None:
            raise UsageError("--admixed needs -n N (the number of admixed individuals)")
        cohort, files = sample_admixed_file(model, output, n, admixed, generations=generations or 8.0,
                                            recombination_map=recombination_map, dirichlet=admixed_dirichlet,
                                            seed=seed, temperature=temperature, device=device, threads=threads)
        means = ", ".join(f"{name} {share:.3f}" for name, share in zip(cohort.sources, cohort.Q.mean(axis=0)))
        click.echo(f"wrote {n} admixed individuals x {cohort.genotypes.n_variants} variants (mean ancestry "
                   f"{means}; .true.Q columns in that order): {', '.join(map(str, files))}")
        return
    if any(value is not None for value in (generations, recombination_map, admixed_dirichlet)):
        raise UsageError("--generations, --recombination-map and --admixed-dirichlet go with --admixed")
    if n is None and not populations:
        raise UsageError("give -n N or --pop POP=N[,POP=N...]")
    if shrink_groups is not None and not shrink:
        raise UsageError("--shrink-groups goes with --shrink S (S > 0)")
    genotypes = sample_file(model, output, n=n, populations=populations, seed=seed, temperature=temperature,
                            device=device, threads=threads, shrink=shrink, shrink_groups=shrink_groups)
    click.echo(f"wrote {genotypes.n_samples} synthetic individuals x {genotypes.n_variants} variants -> {output}")


@vae.command("evaluate")
@click.argument("real", type=click.Path())
@click.argument("synthetic", type=click.Path())
@click.option("--holdout", type=click.Path(), default=None, help="Real genomes not used in training (the ceiling, "
              "and the other half of the privacy loss).")
@click.option("--pop", "labels", type=click.Path(), default=None, help="Population labels of REAL and HOLDOUT "
              "individuals, for the train-on-synthetic / test-on-real classifier.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Report prefix: REPORT.json + REPORT_*.png.")
@click.option("--ld-window", type=POSITIVE, default=100, show_default=True, help="LD pairs: variants at most this many "
              "apart.")
@click.option("--max-rows", type=POSITIVE, default=5000, show_default=True, help="Rows per set in nearest-neighbour "
              "metrics.")
@click.option("--reference-repeats", type=click.IntRange(min=0), default=5, show_default=True,
              help="Random halvings of HOLDOUT (by person) scored as if one half were synthetic: the privacy loss "
              "of fresh real genomes, i.e. its noise level at this sample size.  0 skips it.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--pop-column", default=None, help="The label column of the --pop table (e.g. super_pop).")
@click.option("--frontier", "frontier_model", type=click.Path(), multiple=True, help="Model file trained on REAL "
              "(repeat for one model per chromosome or region): also score its sampling settings and the "
              "per-population-frequency generator beside SYNTHETIC, on privacy loss against accuracy and AATS "
              "(REPORT.frontier.tsv, REPORT_frontier.png).  Needs --holdout.")
@click.option("--temperatures", type=NumberList(), default=None, help="Latent temperatures on the frontier "
              "(default 0.7,1,1.3; 'none' for no temperature setting).")
@click.option("--shrinks", type=NumberList(), default=None, help="Shrinkages toward the group on the frontier, in "
              "(0, 1], for models trained with populations (default 0.1,0.25,0.5; 'none' for no shrinkage).")
@click.option("--shrink-groups", type=click.Path(), default=None, help="Labels table with population and "
              "super-population columns: shrink toward the super-population (default: toward all populations).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def vae_evaluate(real, synthetic, holdout, labels, output, ld_window, max_rows, reference_repeats, seed, pop_column,
                 frontier_model, temperatures, shrinks, shrink_groups, quiet):
    """Realism and privacy of SYNTHETIC against the REAL training genomes (and a real HOLDOUT).

    With --frontier MODEL, also the privacy-utility frontier of that model's sampling settings (--temperature and
    --shrink of vae sample), each drawn as large as REAL, next to SYNTHETIC, the per-population-frequency generator
    and fresh real genomes, so that a setting can be picked for vae sample.
    """
    from genoae.commands.vae import evaluate_files
    from genoae.simulate.evaluate import format_summary

    report = evaluate_files(real, synthetic, output, holdout_path=holdout, labels=labels, ld_window=ld_window,
                            max_rows=max_rows, seed=seed, reference_repeats=reference_repeats,
                            pop_column=pop_column, progress=not quiet,
                            frontier_model=list(frontier_model) or None, temperatures=temperatures,
                            shrinks=shrinks, shrink_groups=shrink_groups)
    click.echo(format_summary(report))




# ======================================================================== (end of synthetic-genome commands)
