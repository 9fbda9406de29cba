"""Every row of the bad-input table (tests/core/bad_inputs.py): an AttrWidgetsError that says what was wrong,
at least 20 rows per family, and the README's table is the one scripts/make_bad_input_table.py writes."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from attrwidgets.errors import AttrWidgetsError
from tests.core.bad_inputs import ROWS, ctx

README = Path(__file__).resolve().parents[2] / "README.md"


def test_at_least_20_bad_inputs_per_family():
    counts = collections.Counter(family for family, *_ in ROWS)
    assert set(counts) == {"token", "depass", "graph", "lig", "dlig", "loaders", "dataset"}
    assert min(counts.values()) >= 20, counts


@pytest.mark.parametrize("family, what, call, says", ROWS, ids=[f"{f}: {w}" for f, w, *_ in ROWS])
def test_bad_input_gets_a_clear_error(family, what, call, says, tmp_path):
    with pytest.raises(AttrWidgetsError) as err:
        call(ctx(), tmp_path)
    assert says in str(err.value), (what, str(err.value))


def test_the_readme_table_is_current():
    import subprocess
    import sys

    table = subprocess.run([sys.executable, "scripts/make_bad_input_table.py", "--print"], cwd=README.parent,
                           check=True, capture_output=True, text=True).stdout
    assert table.strip() in README.read_text(), "run: python scripts/make_bad_input_table.py (it updates README.md)"
