"""The figures people publish: arrays in, figure files out (matplotlib, Agg backend, written atomically).

:mod:`~genoae.plot.structure` (stacked bars of Q), :mod:`~genoae.plot.pca_scatter` (PCA scatters),
:mod:`~genoae.plot.evaluation` (the synthetic-genome report's figures); :mod:`~genoae.plot.figure` holds the
colours they share.  Nothing here reads files or aligns runs: callers pass aligned arrays.
"""
from genoae.plot.evaluation import write_evaluation_plots, write_frontier_plot
from genoae.plot.figure import CLUSTER_COLOURS, FIGURE_FORMATS, cluster_colour
from genoae.plot.pca_scatter import pca_plot
from genoae.plot.structure import structure_order, structure_plot

__all__ = ["CLUSTER_COLOURS", "FIGURE_FORMATS", "cluster_colour", "pca_plot", "structure_order", "structure_plot",
           "write_evaluation_plots", "write_frontier_plot"]
