"""What every scripts/make_*notebook.py shares: the cell constructors and writing the notebook (python3 kernel)."""

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell


def write_notebook(cells, path: str) -> None:
    nb = nbf.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbf.write(nb, path)
    print(f"wrote {path}")
