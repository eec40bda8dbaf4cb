"""Small helpers that fit queuekit into web frameworks.

- :mod:`queuekit.integrations.fastapi`: a lifespan that migrates and builds
  the manager at start-up, and a dependency that hands it to endpoints.
- :mod:`queuekit.integrations.flask`: a Flask extension with ``init_app``.

Each imports its framework only when imported itself. Django applications
that use SQLAlchemy can call :class:`~queuekit.JobManager` directly; the
Django ORM is not supported (queuekit enqueues in SQLAlchemy transactions).
"""
