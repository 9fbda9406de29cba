"""How a live view gets the aw.Source it computes through (core/source.py): the one it is given (source=...,
shared with other views), or one it makes from model=, prompt=, max_new_tokens= and target=."""

from __future__ import annotations

from attrwidgets.core.source import Source
from attrwidgets.errors import AttrWidgetsError

SOURCE_KEYWORDS = ("source", "model", "prompt", "max_new_tokens", "target")


def checked_source(view: str, source) -> Source:
    """`source` if it is an aw.Source, else a clear error (`view` is the view it was given to)."""
    if not isinstance(source, Source):
        raise AttrWidgetsError(f"{view}: source must be an aw.Source(model, prompt), got {type(source).__name__}.")
    return source


def live_source(view: str, live: dict) -> Source:
    """Pops SOURCE_KEYWORDS from `live` (a view's live keywords) and returns the Source they name."""
    source = live.pop("source", None)
    made = {k: live.pop(k) for k in SOURCE_KEYWORDS[1:] if k in live}
    if source is not None:
        checked_source(view, source)
        if made:
            raise AttrWidgetsError(f"{view}(source=...) takes no {sorted(made)}: the source has them. Make another "
                                   "aw.Source for another model or prompt.")
        return source
    if "model" not in made or "prompt" not in made:
        raise AttrWidgetsError(f"Live {view} needs model=<ModelHandle> and prompt='...' (or source=aw.Source(model, "
                               "prompt), or session=...).")
    if not hasattr(made["model"], "tokenizer") and not isinstance(made["model"], str):
        raise AttrWidgetsError(f"Live {view} needs model=<ModelHandle> and prompt='...': model must be a ModelHandle "
                               f"(aw.load_model), got {type(made['model']).__name__}.")
    return Source(made.pop("model"), made.pop("prompt"), **made)
