"""Evaluation of quality metrics against subjective scores and degradation ladders (``deepaq eval``).

Modules (none is imported here, so ``import deepaq_core.evaluation`` stays cheap):

- :mod:`~deepaq_core.evaluation.manifest`: :class:`ManifestRow`, :func:`load_manifest`.
- :mod:`~deepaq_core.evaluation.stats`: correlations, bootstrap intervals, Fisher-z mean,
  the ITU-T P.1401 monotonic mapping, its cross-fitted predictions and RMSE, ladder agreement.
- :mod:`~deepaq_core.evaluation.metrics`, :mod:`~deepaq_core.evaluation.peers`,
  :mod:`~deepaq_core.evaluation.baselines`: DeePAQ models, optional peer metrics, the baselines.
- :mod:`~deepaq_core.evaluation.runner`: scoring a manifest with many metrics, then statistics.
- :mod:`~deepaq_core.evaluation.suite`: the dev suite (every shared set in one run, one table each).
- :mod:`~deepaq_core.evaluation.ladder`, :mod:`~deepaq_core.evaluation.report`,
  :mod:`~deepaq_core.evaluation.cli`: ladder generation, outputs, the command.
"""
