"""Every test named after a rule id is explained in tests/README.md's rule table."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
README = TESTS / "README.md"
#: A test name carries a rule id when it names a rule in CamelCase or a W<n> fix.
CARRIES_RULE_ID = re.compile(r"^test_.*[A-Z]")


@functools.cache
def rule_id_tests() -> frozenset[str]:
    """Names of the test functions, anywhere in the suite, that carry a rule id."""
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        text = path.read_text()
        if not re.search(r"def test_\w*[A-Z]", text):
            continue
        for node in ast.parse(text, str(path)).body:
            if isinstance(node, ast.FunctionDef) and CARRIES_RULE_ID.match(node.name):
                names.add(node.name)
    return frozenset(names)


def table_rows() -> dict[str, str]:
    """Test name to explained behaviour, from the README's tables."""
    rows: dict[str, str] = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `(test_\w+)` \| ([^|]+) \| ([^|]+) \|$", line)
        if match:
            rows[match.group(1)] = match.group(3).strip()
    return rows


def test_every_rule_id_test_is_in_the_readme_table() -> None:
    named = rule_id_tests()
    assert len(named) >= 90  # the conformance suite's rule-named tests
    missing = sorted(named - table_rows().keys())
    assert not missing, f"add these tests to the rule table of tests/README.md: {missing}"


def test_the_table_lists_only_tests_that_exist_and_says_what_each_proves() -> None:
    rows = table_rows()
    assert sorted(rows.keys() - rule_id_tests()) == []
    assert all(len(text) > 20 for text in rows.values())
