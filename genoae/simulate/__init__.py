"""Synthetic genomes: a population-conditioned VAE over blocks of neighbouring SNPs (:mod:`~genoae.simulate.network`),
its estimator (:mod:`~genoae.simulate.estimator`: train, sample, save, load) and the realism and privacy metrics of
what it draws (:mod:`~genoae.simulate.evaluate`)."""
from genoae.simulate.estimator import SyntheticGenomes, TrainingHistory
from genoae.simulate.network import GenomeVAE

__all__ = ["GenomeVAE", "SyntheticGenomes", "TrainingHistory"]
