"""DragBench (both benchmarks of that name): loaders, a resumable sharded runner and the metrics; a shapes set with
ground truth and the measures against it."""

from sdelab._lazy import lazy_exports

_WHERE = {
    "DragSample": "sdelab.bench.data",
    "DragBench": "sdelab.bench.data",
    "load_dragbench": "sdelab.bench.data",
    "safe_unpickle": "sdelab.bench.data",
    "write_examples": "sdelab.bench.examples",
    "write_shapes_bench": "sdelab.bench.shapes_set",
    "run_bench": "sdelab.bench.runner",
    "measure_outputs": "sdelab.bench.runner",
    "sample_seed": "sdelab.bench.runner",
    "mean_distance": "sdelab.bench.metrics",
    "truth_metrics": "sdelab.bench.truth",
    "agreement": "sdelab.bench.truth",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
