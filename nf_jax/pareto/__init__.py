"""Six-objective co-design of sparse-cascade topology and accelerator, in pymoo's terms.

Modules, in import order:

* :mod:`~nf_jax.pareto.config`: :class:`SearchConfig` (everything that determines a result)
  and the CLI's ``get_config()``;
* :mod:`~nf_jax.pareto.problem`: the genome, its decoder, the batched evaluator and the
  vectorised pymoo ``Problem``;
* :mod:`~nf_jax.pareto.operators`: reference directions, variation, parent tournament and the
  pymoo algorithms;
* :mod:`~nf_jax.pareto.accuracy`: the accuracy models (measured table, calibrated proxy,
  short training) with intervals and calibrated regions;
* :mod:`~nf_jax.pareto.report`: front metrics (moocore) and the outputs;
* :mod:`~nf_jax.pareto.search`: :func:`run`, the ask/tell loop with checkpoints;
* ``python -m nf_jax.pareto`` (:mod:`nf_jax.pareto.__main__`): the command line.

Example::

  from nf_jax import pareto
  result = pareto.run(pareto.SearchConfig(generations=4), workdir="runs/small")
"""

from nf_jax.pareto.config import ACCURACY_MODES as ACCURACY_MODES
from nf_jax.pareto.config import ALGORITHMS as ALGORITHMS
from nf_jax.pareto.config import SearchConfig as SearchConfig
from nf_jax.pareto.config import get_config as get_config
from nf_jax.pareto.operators import ideal_tournament as ideal_tournament
from nf_jax.pareto.operators import make_algorithm as make_algorithm
from nf_jax.pareto.operators import num_ref_dirs as num_ref_dirs
from nf_jax.pareto.operators import reference_directions as reference_directions
from nf_jax.pareto.problem import CoDesignProblem as CoDesignProblem
from nf_jax.pareto.report import SearchResult as SearchResult
from nf_jax.pareto.report import hypervolume as hypervolume
from nf_jax.pareto.report import nondominated as nondominated
from nf_jax.pareto.report import write_outputs as write_outputs
from nf_jax.pareto.search import CHECKPOINT as CHECKPOINT
from nf_jax.pareto.search import CheckpointError as CheckpointError
from nf_jax.pareto.search import InfeasibleError as InfeasibleError
from nf_jax.pareto.search import run as run
