"""Every matplotlib figure. Functions draw on an Axes and return it: ``fn(data, ax=None) -> Axes``.

No pyplot: figures are plain ``matplotlib.figure.Figure`` objects, so nothing here touches global state (no
``plt.show()``, no rcParams but the SVG's id salt for the length of one save, no current figure); files are
rendered with the Agg canvas. In a notebook, pass an ``ax`` from your own ``plt.subplots()``, or display the
returned ``ax.figure``.

``data`` is what a sweep or a run leaves behind: run records (``sim.experiment.results``) and the per-design-point
table of ``sim.experiment.tables.design_point_summary`` for a sweep's figures, a run document
(``sim.experiment.rundoc``) for a run's. The rooms:

- ``axes``: what every figure shares (colours, log axes, notes, titles);
- ``panels``: requests per endpoint, client node x serving node, latency ECDFs (a sweep's and a run's);
- ``sweep``: a sweep's figures (``sweep_figures``);
- ``run``: a run's figures (``run_figures``), over time;
- ``callgraph``: the service graph, a page's waterfall, the pages' latency;
- ``cluster``: the cluster as a graph;
- ``files``: a figure as PNG and SVG bytes.

Only this package imports matplotlib (an import-linter contract in pyproject.toml).
"""

from sim.plots.axes import log_ticks
from sim.plots.callgraph import edge_table, service_graph, waterfall
from sim.plots.cluster import LABELLED_VERTICES, cluster_graph
from sim.plots.files import SVG_HASH_SALT, figure_files, plain_text, save_svg
from sim.plots.panels import (
    ANNOTATED_CELLS,
    LABELLED_TICKS,
    endpoint_bars,
    endpoint_bars_of,
    latency_ecdf,
    node_heatmap,
    node_heatmap_of,
    page_latency_ecdf,
)
from sim.plots.run import (
    MAX_SERVICE_PANELS,
    MAX_STACKED,
    drawn_services,
    failures_over_time,
    landed_over_time,
    latency_over_time,
    run_figures,
)
from sim.plots.sweep import (
    LATENCY_STYLES,
    LOCALITY_STYLES,
    plot_roles,
    sweep_figures,
    tradeoff_latency,
    tradeoff_locality,
)

__all__ = [
    "ANNOTATED_CELLS",
    "LABELLED_TICKS",
    "LABELLED_VERTICES",
    "LATENCY_STYLES",
    "LOCALITY_STYLES",
    "MAX_SERVICE_PANELS",
    "MAX_STACKED",
    "SVG_HASH_SALT",
    "cluster_graph",
    "drawn_services",
    "edge_table",
    "endpoint_bars",
    "endpoint_bars_of",
    "failures_over_time",
    "figure_files",
    "landed_over_time",
    "latency_ecdf",
    "latency_over_time",
    "log_ticks",
    "node_heatmap",
    "node_heatmap_of",
    "page_latency_ecdf",
    "plain_text",
    "plot_roles",
    "run_figures",
    "save_svg",
    "service_graph",
    "sweep_figures",
    "tradeoff_latency",
    "tradeoff_locality",
    "waterfall",
]
