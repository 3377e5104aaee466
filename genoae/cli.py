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


# ======================================================================== (end of ancestry commands)


# ======================================================================== comparison: compare, plot


# ======================================================================== (end of comparison commands)


# ======================================================================== synthetic genomes: vae


# ======================================================================== (end of synthetic-genome commands)
