"""Evaluate: how good an index is on labelled questions, and fitting it to them.

Owns ranking, abstention and latency metrics (``metrics``), the benchmark (``benchmark``) and its report
(``report``), fitting the fusion weights and abstention calibration (``fitting``), grouped cross-validation of
those fits (``crossval``), the ``calibrate`` command's fit of an index (``calibrate``) and fine-tuning the encoder
(``tuning``).

May import: ``search`` and the stages below it, :mod:`clipsearch.errors`; never ``serve`` or ``cli``.
"""
