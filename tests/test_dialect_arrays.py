"""Values sent as arrays (PostgreSQL) or lists (elsewhere) select the same rows on each dialect."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from queuekit.dialects import support_for


def _table(engine: sa.Engine) -> sa.Table:
    metadata = sa.MetaData()
    table = sa.Table(
        "array_probe",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tag", sa.String(20)),
    )
    metadata.create_all(engine)
    return table


def test_one_of_and_pair_of_match_exactly_the_given_values(engine: sa.Engine) -> None:
    dialect = support_for(engine.dialect)
    table = _table(engine)
    ids = [uuid.uuid4() for _ in range(5)]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "tag": f"t{n}"} for n, i in enumerate(ids)])
        chosen = sa.select(table.c.tag).order_by(table.c.tag)
        picked = conn.execute(chosen.where(dialect.one_of(table.c.id, ids[1:3]))).scalars()
        assert list(picked) == ["t1", "t2"]
        assert list(conn.execute(chosen.where(dialect.one_of(table.c.id, []))).scalars()) == []
        # A pair matches only as a pair: (ids[0], "t1") names no row.
        pairs = [(ids[0], "t1"), (ids[3], "t3"), (ids[4], "t4")]
        paired = conn.execute(chosen.where(dialect.pair_of(table.c.id, table.c.tag, pairs)))
        assert list(paired.scalars()) == ["t3", "t4"]


def test_rows_of_gives_the_lists_back_as_rows(engine: sa.Engine) -> None:
    dialect = support_for(engine.dialect)
    rows = dialect.rows_of(
        "probe_rows", {"n": (sa.Integer(), [1, 2, 3]), "word": (sa.String(), ["a", "b", "c"])}
    )
    with engine.connect() as conn:
        got = conn.execute(sa.select(rows.c.n, rows.c.word).order_by(rows.c.n)).all()
    assert [tuple(r) for r in got] == [(1, "a"), (2, "b"), (3, "c")]
    empty = dialect.rows_of("no_rows", {"n": (sa.Integer(), [])})
    with engine.connect() as conn:
        assert conn.execute(sa.select(empty.c.n)).all() == []
