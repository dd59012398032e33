"""torchnas: neural architecture search with a reinforcement-learning controller.

NAS with RL (Zoph & Le 2017) and ENAS (Pham et al. 2018) in PyTorch: a search space is the
list of decisions a controller makes (:mod:`torchnas.spaces`), one LSTM controller serves
every space (:mod:`torchnas.controller`), strategies are interchangeable
(:mod:`torchnas.strategies`), evaluators turn an architecture into a reward
(:mod:`torchnas.evaluators`), and runs checkpoint and resume (:mod:`torchnas.runs`). From a script, :mod:`torchnas.api`
does what the command line does: ``from torchnas import api; api.search(preset=...)``.
"""
__version__ = "0.1.0"

