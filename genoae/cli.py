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
def _read_options(legend):
    """Reader keyword arguments from the shared I/O options."""
    return {} if legend is None else {"legend": legend}  # default: read_genotypes looks for a legend itself


@cli.command()
@click.argument("path", type=click.Path())
@click.option("--legend", type=click.Path(), default=None,
              help="Legend file (id position a0 a1) for .hapt input; default: one found beside the file.")
def info(path, legend):
    """Summarise a genotype file: samples, variants, chromosomes, missing rate, ploidy/phasing, MAF.

    Reads PLINK .bed/.bim/.fam, VCF/.vcf.gz, HDF5 (scikit-allel layout), .npy, whitespace text and .hapt.
    Skipped VCF/HDF5 records (multi-allelic, indel, symbolic, no GT) are counted in the output.
    """
    from genoae.io import read_genotypes
    from genoae.summary import summarise

    genotypes = read_genotypes(path, **_read_options(legend))
    click.echo(summarise(genotypes))


@cli.command()
@click.argument("source", type=click.Path())
@click.argument("target", type=click.Path())
@click.option("--maf", type=click.FloatRange(0, 0.5), default=None, help="Keep variants with MAF >= this.")
@click.option("--max-missing", type=click.FloatRange(0, 1), default=None,
              help="Keep variants with a missing-call rate <= this.")
@click.option("--legend", type=click.Path(), default=None, help="Legend file for .hapt input.")
def convert(source, target, maf, max_missing, legend):
    """Convert SOURCE to TARGET, formats chosen by extension.

    Outputs: .bed (PLINK; also .bim/.fam), .vcf / .vcf.gz (BGZF; phased when the input has haplotypes),
    .h5 (scikit-allel layout: calldata/GT, samples, variants/*), .npy (samples x SNPs A2 counts, -1 missing).
    """
    from genoae.io import convert as convert_genotypes

    written = convert_genotypes(source, target, maf=maf, max_missing=max_missing, **_read_options(legend))
    note = f"; {written.info['filtered out']} filtered out" if "filtered out" in written.info else ""
    click.echo(f"wrote {target}: {written.n_samples} samples x {written.n_variants} variants"
               f"{' (phased)' if written.phased else ''}{note}")


# ======================================================================== (end of I/O commands)


# ======================================================================== ancestry: admix, project, demo


# ======================================================================== (end of ancestry commands)


# ======================================================================== comparison: compare, plot


# ======================================================================== (end of comparison commands)


# ======================================================================== synthetic genomes: vae


# ======================================================================== (end of synthetic-genome commands)
