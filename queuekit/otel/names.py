"""Every name queuekit's telemetry uses, written once.

Attribute names are string literals rather than constants from
``opentelemetry-semantic-conventions`` (whose constants come and go between
releases). The messaging conventions are followed where they fit:
``messaging.system`` is ``queuekit``, operations are ``send``, ``process``
and ``settle``, and span names are ``{operation} {task identifier}`` (task
identifiers are few; named queues, often one per entity, are not, so a
queue name is only ever an attribute of a span).
"""

from __future__ import annotations

#: The instrumentation scope of the tracer and the meter.
SCOPE = "queuekit"
#: The version of the semantic conventions the telemetry follows.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
SYSTEM = "queuekit"

# -- span attributes (any cardinality) ----------------------------------------------

MESSAGING_SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
DESTINATION = "messaging.destination.name"
MESSAGE_ID = "messaging.message.id"
BATCH_COUNT = "messaging.batch.message_count"
ERROR_TYPE = "error.type"
ATTEMPT = "queuekit.attempt"
QUEUE_NAME = "queuekit.queue_name"
TASK_IDENTIFIERS = "queuekit.task_identifiers"
ENQUEUE_OPERATION = "queuekit.enqueue.operation"

# -- metric attributes: these two only, both of bounded cardinality -------------------

TASK = "queuekit.task_identifier"
OUTCOME = "queuekit.outcome"

# -- instruments ---------------------------------------------------------------------

ENQUEUED = "queuekit.jobs.enqueued"
COMPLETED = "queuekit.jobs.completed"
FAILED = "queuekit.jobs.failed"
EXHAUSTED = "queuekit.jobs.exhausted"
CANCELLED = "queuekit.jobs.cancelled"
ATTEMPT_DURATION = "queuekit.attempt.duration"
QUEUE_TIME = "queuekit.job.queue_time"
BACKLOG_AVAILABLE = "queuekit.backlog.available"
BACKLOG_LOCKED = "queuekit.backlog.locked"
BACKLOG_EXHAUSTED = "queuekit.backlog.exhausted"
BACKLOG_OLDEST_AGE = "queuekit.backlog.oldest_waiting_age"

#: Bucket bounds (seconds) both histograms share, 5 ms to a minute.
_UP_TO_A_MINUTE = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Buckets (seconds) of the attempt-duration histogram: 5 ms to 15 minutes.
DURATION_BUCKETS = (*_UP_TO_A_MINUTE, 120.0, 300.0, 900.0)
#: Buckets (seconds) of the queue-time histogram: 5 ms to 6 hours.
QUEUE_TIME_BUCKETS = (*_UP_TO_A_MINUTE, 300.0, 900.0, 3600.0, 21600.0)

#: How a ``process`` span relates to the context stored at enqueue.
SPAN_RELATIONSHIPS = ("link", "child")
