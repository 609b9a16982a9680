"""Scoring: the ranking and abstention policy, pure data and arithmetic.

Owns the fusion of a clip's ranking components into one score (``fusion``) and the calibrated confidence and
threshold behind ``answered`` (``calibration``, with the shipped ``default_calibration.json``). A build records
both in the index manifest and a search applies them, so this package sits below ``index``.

May import: nothing of clipsearch but :mod:`clipsearch.errors`.
"""
