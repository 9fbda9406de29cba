"""Writes the README's bad-input table from tests/core/bad_inputs.py: every row is run and its message shown as
raised (on the tiny random test models; paths shown as PATH). --print writes the table to stdout instead.

    python scripts/make_bad_input_table.py            # updates README.md between the table's markers
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
START, END = "<!-- bad-input table: scripts/make_bad_input_table.py -->", "<!-- end of the bad-input table -->"
FAMILIES = {"token": "token attribution", "depass": "DePass, head contributions", "graph": "graphs, transcoders",
            "lig": "LIG", "dlig": "layer IG, DLIG", "loaders": "loaders",
            "dataset": "dataset attribution"}


def table() -> str:
    import logging

    logging.disable(logging.WARNING)
    from attrwidgets.errors import AttrWidgetsError
    from tests.core.bad_inputs import ROWS, ctx

    lines = ["| family | input | message |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for family, what, call, _ in ROWS:
            case = Path(tmp) / str(len(lines))
            case.mkdir()
            try:
                call(ctx(), case)
                message = "(no error: the row's test fails)"
            except AttrWidgetsError as exc:
                message = str(exc).splitlines()[0]
            message = re.sub(re.escape(str(case)) + r"/?", "PATH/", message)
            message = re.sub(r"/tmp/[^\s'\":)]+", "PATH", message)
            message = message if len(message) <= 170 else message[:167] + "..."
            lines.append(f"| {FAMILIES[family]} | {what} | {message.replace('|', '&#124;')} |")
    return "\n".join(lines)


def main() -> int:
    text = table()
    if "--print" in sys.argv:
        print(text)
        return 0
    readme = ROOT / "README.md"
    content = readme.read_text()
    if START not in content:
        raise SystemExit(f"README.md has no {START!r} marker")
    before, rest = content.split(START, 1)
    after = rest.split(END, 1)[1]
    readme.write_text(f"{before}{START}\n{text}\n{END}{after}")
    print(f"README.md: bad-input table with {text.count(chr(10)) - 1} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
