"""The dialect seam's docstring lists exactly the members DialectSupport has."""

from __future__ import annotations

import re

import queuekit.dialects
from queuekit.dialects import DialectSupport


def listed_members() -> set[str]:
    doc = queuekit.dialects.__doc__ or ""
    listing = doc[doc.index("- Server:") :]
    return set(re.findall(r"``(\w+)``", listing))


def test_the_seam_says_it_is_internal() -> None:
    assert "Internal" in (queuekit.dialects.__doc__ or "")


def test_the_docstring_lists_every_member_and_no_other() -> None:
    members = {name for name in vars(DialectSupport) if not name.startswith("_")}
    assert len(members) >= 20
    assert listed_members() == members
