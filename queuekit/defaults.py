"""queuekit's defaults, each written once.

The manager, the async manager, the worker, maintenance, the models' server
defaults and the command line all read them here; a unit test checks that
the documentation states the same values.
"""

from __future__ import annotations

#: Attempts a job gets before it is exhausted (``add_job``, ``JobSpec``, the
#: jobs table's server default, replayed jobs, ``queuekit jobs add``).
MAX_ATTEMPTS = 25
#: How long history rows of a claim are kept (``get_jobs``, the worker, cancels).
HISTORY_RETENTION = "30 days"
#: How long an unused task identifier without schema or jobs is kept.
TASK_IDENTIFIER_KEEP = "7 days"
#: After how long without a heartbeat a worker's lock expires (worker, maintenance).
LOCK_TIMEOUT = "10 minutes"
#: ``reset_locked_jobs``' own, more cautious default when called directly.
RESET_LOCK_TIMEOUT = "4 hours"

#: Connection poolers queuekit knows how to run behind (``pooler=``, ``--pooler``).
POOLERS = ("transaction",)

__all__ = [
    "HISTORY_RETENTION",
    "LOCK_TIMEOUT",
    "MAX_ATTEMPTS",
    "POOLERS",
    "RESET_LOCK_TIMEOUT",
    "TASK_IDENTIFIER_KEEP",
]
