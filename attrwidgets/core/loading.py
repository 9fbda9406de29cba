"""aw.load(path): any file attrwidgets writes, and the external layouts it reads, as the right type, chosen from
the file itself (its `schema`, or the keys of an external layout), never from its name.

Each type keeps its own loader (aw.load_result, aw.load_graph, ...); this module only recognises the file and
hands it on, so every loader's checks and messages stay as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from attrwidgets.core.bundle_io import bundle_paths
from attrwidgets.core.depass.result import (
    DECOMPOSITION_SCHEMA,
    HEADS_SCHEMA,
    load_decomposition,
    load_head_contributions,
)
from attrwidgets.core.dlig.result import SCHEMA as DIFFUSION_SCHEMA
from attrwidgets.core.dlig.result import load_diffusion
from attrwidgets.core.graph.attribution import load_graph
from attrwidgets.core.graph.checkpoint import load_transcoder
from attrwidgets.core.graph.graph_write import SCHEMA as GRAPH_SCHEMA
from attrwidgets.core.lig.lig_json import load_layer_attribution, load_lig_json
from attrwidgets.core.lig.lig_write import LIG_SCHEMA
from attrwidgets.core.token.inseq_io import GZIP_MAGIC, is_inseq_output, read_inseq
from attrwidgets.core.token.result_io import load_result
from attrwidgets.core.token.result_write import SCHEMA as ATTRIBUTION_SCHEMA
from attrwidgets.errors import AttrWidgetsError

SNIFF_BYTES = 1 << 16  # the writers put "schema" first: no need to parse a large file twice
ACCEPTED = ("an Attribution, Decomposition, HeadContributions, LayerAttribution, DiffusionAttribution or Graph "
            "saved by attrwidgets, a TokenLens or LIG-package JSON, an Inseq FeatureAttributionOutput JSON "
            "(gzipped too), or a transcoder folder")
_SCHEMA_KEY = re.compile(rb'"schema"\s*:\s*"([^"\\]{1,100})"')


def load(path, *, model=None, transcoder=None):
    """The saved result at `path`, of whatever type it is. `model` (and `transcoder`) re-attach a graph to its
    model for labels, interventions and rebuilds; other types take no model."""
    target = Path(path).expanduser()
    if target.is_dir():
        _no_model("a transcoder folder", model, transcoder)
        return load_transcoder(target)
    file = target if target.is_file() else bundle_paths(target)[0]
    if not file.is_file():
        raise AttrWidgetsError(f"Cannot read {path}: no such file or folder. Pass a path given to a result's save().")
    if _is_gzip(file):
        # only Inseq's save(compress=True) gives us gzip; the schema sniff below reads raw bytes
        _no_model("an Inseq file", model, transcoder)
        return read_inseq(file)
    schema = _sniff_schema(file)
    if schema is None:
        return _external(file, model, transcoder)
    if schema == GRAPH_SCHEMA:
        return load_graph(file, model=model, transcoder=transcoder)
    _no_model(f"a file of schema {schema!r}", model, transcoder)
    by_schema = {DECOMPOSITION_SCHEMA: load_decomposition, HEADS_SCHEMA: load_head_contributions,
                 LIG_SCHEMA: load_layer_attribution, DIFFUSION_SCHEMA: load_diffusion}
    if schema in by_schema:
        return by_schema[schema](file)
    if schema.startswith(ATTRIBUTION_SCHEMA.rsplit("/", 1)[0] + "/"):
        return load_result(file)
    raise AttrWidgetsError(f"Cannot read {file}: its schema {schema!r} is not one this attrwidgets reads. "
                           f"aw.load reads {ACCEPTED}; a newer attrwidgets may read it.")


def _sniff_schema(file: Path) -> str | None:
    with open(file, "rb") as f:
        head = f.read(SNIFF_BYTES)
    match = _SCHEMA_KEY.search(head)
    return match.group(1).decode("utf-8", "replace") if match else None


def _is_gzip(file: Path) -> bool:
    with open(file, "rb") as f:
        return f.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def _external(file: Path, model, transcoder):
    """A file without our schema: TokenLens (metadata + data), the LIG package's JSON (tokens, config,
    layers) or Inseq's FeatureAttributionOutput (an `__instance_type__` record)."""
    _no_model("this file", model, transcoder)
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise AttrWidgetsError(f"Cannot read {file}: not a JSON file attrwidgets knows ({exc}). "
                               f"aw.load reads {ACCEPTED}.") from None
    if isinstance(data, dict) and "metadata" in data and "data" in data:
        return load_result(file)
    if isinstance(data, dict) and {"tokens", "config", "layers"} <= set(data):
        return load_lig_json(file)
    if is_inseq_output(data):
        return read_inseq(file)
    keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
    raise AttrWidgetsError(f"Cannot read {file}: no schema and not a layout attrwidgets knows (found {keys}). "
                           f"aw.load reads {ACCEPTED}.")


def _no_model(what: str, model, transcoder) -> None:
    if model is not None or transcoder is not None:
        raise AttrWidgetsError(f"model= and transcoder= re-attach a graph; {what} takes neither: drop them.")
