"""Build the demo data set shipped with genoae: a subset of the 1000 Genomes 805-SNP panel as PLINK files.

Source: ``../shared/data/1kg_805snp_haplotypes`` (Yelmen et al. 2021's "real" 805 ancestry-informative SNPs, all
2,504 phase 3 individuals, phased haplotypes; ``805_SNP.legend`` gives id/position/alleles).  We keep
``--per-superpop`` individuals of each of the five super-populations (AFR, AMR, EAS, EUR, SAS), chosen at random
with ``--seed``, sum the two haplotypes into A2 counts (allele ``1`` of the .hapt is taken as the legend's ``a1``,
written as PLINK A2; the source does not say which allele ``1`` is, so treat the orientation as arbitrary), and write

    genoae/data/demo_1kg805.bed/.bim/.fam     PLINK 1 binary (SNP-major)
    genoae/data/demo_1kg805.labels.tsv        sample, pop, super_pop (in .fam order)
    genoae/data/demo_1kg805.pop               super-population per individual (ADMIXTURE .pop format)

Run from the repository root:  python scripts/make_demo_data.py
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(ROOT.parent / "shared" / "data" / "1kg_805snp_haplotypes"))
    parser.add_argument("--out", default=str(ROOT / "genoae" / "data" / "demo_1kg805"))
    parser.add_argument("--per-superpop", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import sys
    sys.path.insert(0, str(ROOT))
    from genoae.genotypes import Genotypes, Samples, Variants
    from genoae.io.plink import write_plink

    source = Path(args.source)
    labels = [line.rstrip("\n").split("\t") for line in open(source / "labels.tsv")][1:]
    haps = []
    names = []
    with gzip.open(source / "805_SNP_1000G_real.hapt.gz", "rt") as handle:
        for line in handle:
            fields = line.split()
            names.append(fields[1])
            haps.append(np.array(fields[2:], dtype=np.int8))
    haps = np.array(haps)  # (2 n, M)
    samples = [name.rsplit("_", 1)[0] for name in names[::2]]
    if [row[0] for row in labels] != samples:
        raise SystemExit("labels.tsv is not in the .hapt order")
    legend = [line.split() for line in open(source / "805_SNP.legend")][1:]
    if len(legend) != haps.shape[1]:
        raise SystemExit("legend and .hapt disagree on the number of SNPs")

    rng = np.random.default_rng(args.seed)
    super_pops = np.array([row[2] for row in labels])
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(super_pops == sp), args.per_superpop, replace=False)
                                   for sp in sorted(set(super_pops))]))
    hap_rows = np.stack([haps[2 * keep], haps[2 * keep + 1]], axis=1)  # (n, 2, M)
    variants = Variants(chrom=[row[0].split(":")[0] for row in legend], pos=[int(row[1]) for row in legend],
                        id=[row[0] for row in legend], a1=[row[2] for row in legend], a2=[row[3] for row in legend])
    iid = np.array(samples)[keep]
    geno = Genotypes.from_haplotypes(hap_rows, Samples(iid=iid, fid=np.array([labels[i][1] for i in keep])),
                                     variants, source="1000 Genomes 805-SNP panel subset")
    # PLINK files are sorted by chromosome and position
    order = np.lexsort((geno.variants.pos, geno.variants.chrom.astype(int)))
    geno = geno.subset(variants=order)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_plink(geno, out)
    with open(out.with_suffix(".labels.tsv"), "w") as handle:
        handle.write("sample\tpop\tsuper_pop\n")
        for i in keep:
            handle.write("\t".join(labels[i]) + "\n")
    with open(out.with_suffix(".pop"), "w") as handle:
        handle.writelines(f"{labels[i][2]}\n" for i in keep)
    print(f"wrote {out}.bed/.bim/.fam: {geno.n_samples} individuals x {geno.n_variants} SNPs")


if __name__ == "__main__":
    main()
