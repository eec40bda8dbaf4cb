"""queuekit's benchmarks, each beside a raw-SQL baseline measured in the same run.

Run them with ``make bench`` or ``python -m benchmarks [NAME...] [--dialect D]``.
Every module of this package that defines ``run(dialect, url)`` is a
benchmark: it gets a fresh database migrated to head and returns a list of
:class:`benchmarks.common.Measurement`. Speed is reported as ratios to the
baseline, never asserted in tests.
"""
