"""Flask: a ``QueueKit`` extension with the usual ``init_app``.

::

    queue = QueueKit()

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["QUEUEKIT_DATABASE_URL"] = "postgresql+psycopg://app@db/shop"
        queue.init_app(app)  # or queue.init_app(app, engine=your_engine)
        return app

    @app.post("/orders")
    def place_order():
        with Session(queue.manager.engine) as session, session.begin():
            session.add(Order(...))
            queue.manager.add_job("send_receipt", {...}, session=session)

Configuration keys: ``QUEUEKIT_DATABASE_URL`` (used when ``init_app`` gets
no engine; else ``SQLALCHEMY_DATABASE_URI``), ``QUEUEKIT_SCHEMA`` and
``QUEUEKIT_MIGRATE`` (run queuekit's migrations in ``init_app``; default
False: run ``queuekit db upgrade`` when you deploy).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine

from queuekit import migrations
from queuekit.errors import InvalidArgumentError
from queuekit.manager import JobManager

#: The key of ``app.extensions`` holding the application's manager.
EXTENSION_KEY = "queuekit"


class QueueKit:
    """The extension: one :class:`~queuekit.JobManager` per Flask application."""

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        #: Keyword arguments for every manager this extension builds (``retry=``...).
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, engine: Engine | None = None) -> JobManager:
        """Build the application's manager (migrating first with ``QUEUEKIT_MIGRATE``)."""
        if engine is None:
            url = app.config.get("QUEUEKIT_DATABASE_URL") or app.config.get(
                "SQLALCHEMY_DATABASE_URI"
            )
            if not url:
                raise InvalidArgumentError(
                    "QueueKit.init_app needs an engine, or QUEUEKIT_DATABASE_URL "
                    "(or SQLALCHEMY_DATABASE_URI) in app.config"
                )
            engine = create_engine(url)
        schema = app.config.get("QUEUEKIT_SCHEMA")
        if app.config.get("QUEUEKIT_MIGRATE", False):
            migrations.upgrade(engine, schema=schema)
        manager = JobManager(engine, schema=schema, **self.options)
        app.extensions[EXTENSION_KEY] = manager
        return manager

    @property
    def manager(self) -> JobManager:
        """The current application's manager (inside an application or request context)."""
        manager = current_app.extensions.get(EXTENSION_KEY)
        if not isinstance(manager, JobManager):
            raise RuntimeError("QueueKit.init_app(app) was not called for this application")
        return manager
