"""Tuning studies: every optimizer tuned on the same budget, trials run on Ray.

``space`` (dimensions and points), ``config`` (the study and its trials),
``trial`` (one trial = one ``optlab train`` run), ``stats`` (scores, the
expected best after k trials, edges), ``store`` (the study's folder),
``engine`` (Ray, started lazily; in-process for benchmarks) and ``run`` (a
study from start or resume to its summary).
"""
