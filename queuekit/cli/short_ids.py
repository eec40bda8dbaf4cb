"""Short job ids for people: the shortest unique prefix shown, any unique prefix accepted.

Job ids are UUIDv7, so ids made close together share their first (time)
digits; tables show each id's hex digits only as far as needed to tell the
rows apart (never fewer than :data:`MIN_SHOWN`), and commands accept any
prefix of at least :data:`MIN_TYPED` digits that names one job, as git does
with commit hashes.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuekit.manager import JobManager

#: Hex digits a table shows at least.
MIN_SHOWN = 8
#: Hex digits a typed prefix needs at least.
MIN_TYPED = 4
_HEX = re.compile(r"[0-9a-f]+")


def short_ids(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The ids' hex prefixes, all as long as the longest one needed to tell two apart.

    One length for all (at least MIN_SHOWN digits) keeps a column aligned, as
    git abbreviates every hash of a listing alike.
    """
    hexes = sorted({job_id.hex for job_id in ids})
    lengths = dict.fromkeys(hexes, MIN_SHOWN)
    for before, after in itertools.pairwise(hexes):
        common = next((i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b), 32)
        for text in (before, after):
            lengths[text] = max(lengths[text], common + 1)
    length = max(lengths.values(), default=MIN_SHOWN)
    return {uuid.UUID(text): text[:length] for text in hexes}


def parse_prefix(text: str) -> str | uuid.UUID:
    """A full id as a UUID, or a prefix as lower-case hex digits; ValueError otherwise."""
    cleaned = text.strip().lower()
    try:
        return uuid.UUID(cleaned)
    except ValueError:
        pass
    digits = cleaned.replace("-", "")
    if not _HEX.fullmatch(digits) or len(digits) > 32:
        raise ValueError(f"{text!r} is not a job id (a UUID, or a prefix of one in hex digits)")
    if len(digits) < MIN_TYPED:
        raise ValueError(f"job id prefix {text!r} is too short: give at least {MIN_TYPED} digits")
    return digits


def resolve(manager: JobManager, prefix: str) -> uuid.UUID:
    """The one job (queued or in history) whose id starts with ``prefix``; ValueError otherwise."""
    low = uuid.UUID(prefix.ljust(32, "0"))
    high = uuid.UUID(prefix.ljust(32, "f"))
    found = manager.job_ids_between(low, high, 3)
    if not found:
        raise ValueError(f"no job id starts with {prefix!r} (see `queuekit jobs list`)")
    if len(found) > 1:
        shown = ", ".join(job_id.hex[: len(prefix) + 4] for job_id in found[:2])
        more = " and more" if len(found) > 2 else ""
        raise ValueError(f"job id prefix {prefix!r} is ambiguous ({shown}{more}); give more digits")
    return found[0]
