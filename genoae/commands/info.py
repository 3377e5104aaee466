"""``genoae info`` (a summary of a genotype file) and ``genoae convert`` (one format to another)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from genoae.errors import UsageError
from genoae.genotypes import ALLELE_CONVENTION, Genotypes
from genoae.commands.common import check_outputs
from genoae.io.vcz import is_zarr_store
from genoae.io import convert, input_files, output_files, read_genotypes


def summary_dict(genotypes: Genotypes) -> dict:
    """Counts and rates describing ``genotypes`` (JSON-friendly)."""
    maf = genotypes.maf()
    observed_maf = maf[~np.isnan(maf)]
    chroms = Counter(genotypes.variants.chrom.tolist())
    return {
        "source": genotypes.source,
        "n_samples": genotypes.n_samples,
        "n_variants": genotypes.n_variants,
        "chromosomes": dict(chroms),
        "missing_rate": genotypes.missing_rate(),
        "ploidy": genotypes.ploidy,
        "phased": genotypes.phased,
        "monomorphic": int((observed_maf == 0).sum()),
        "no_observed_calls": int(np.isnan(maf).sum()),
        "maf_quantiles": {q: float(np.quantile(observed_maf, q)) if observed_maf.size else None
                          for q in (0.0, 0.25, 0.5, 0.75, 1.0)},
        "maf_below_0.01": int((observed_maf < 0.01).sum()),
        "maf_below_0.05": int((observed_maf < 0.05).sum()),
        "allele_counted": ALLELE_CONVENTION,
        **genotypes.info,
    }


def summarise(genotypes: Genotypes) -> str:
    """A short multi-line text summary."""
    d = summary_dict(genotypes)
    chrom_text = ", ".join(f"{c}:{n}" for c, n in list(d["chromosomes"].items())[:30])
    if len(d["chromosomes"]) > 30:
        chrom_text += f", ... ({len(d['chromosomes'])} in all)"
    q = d["maf_quantiles"]
    lines = [
        f"file:         {d['source']}",
        f"samples:      {d['n_samples']}",
        f"variants:     {d['n_variants']}",
        f"chromosomes:  {chrom_text}",
        f"missing rate: {d['missing_rate']:.4%}",
        f"ploidy:       {d['ploidy']} ({'phased haplotypes' if d['phased'] else 'unphased'})",
        f"MAF:          min {q[0.0]:.4f}  q25 {q[0.25]:.4f}  median {q[0.5]:.4f}  q75 {q[0.75]:.4f}  max {q[1.0]:.4f}"
        if q[0.5] is not None else "MAF:          no observed calls",
        f"              {d['monomorphic']} monomorphic, {d['maf_below_0.01']} with MAF < 0.01, "
        f"{d['maf_below_0.05']} with MAF < 0.05, {d['no_observed_calls']} with no observed call",
        f"counted:      {d['allele_counted']}",
    ]
    for key, value in genotypes.info.items():
        lines.append(f"{key + ':':<14}{value}" if len(key) < 13 else f"{key}: {value}")
    return "\n".join(lines)


def info_file(path, legend="auto", region=None) -> str:
    """``genoae info``: the summary of the genotype file at ``path`` (``legend``: for ``.hapt`` input; ``region``:
    for an indexed VCF/BCF)."""
    return summarise(read_genotypes(path, legend=legend, region=region))


def convert_file(source, target, maf: float | None = None, max_missing: float | None = None,
                 legend="auto", region=None) -> Genotypes:
    """``genoae convert``: SOURCE to TARGET (formats by extension), optionally filtered; returns what was written."""
    if Path(target).is_dir() and not is_zarr_store(target):
        raise UsageError(f"{target} is a folder: give a file name (e.g. {Path(target) / 'out.bed'})")
    check_outputs(output_files(target), input_files(source, legend))
    return convert(source, target, maf=maf, max_missing=max_missing, legend=legend, region=region)
