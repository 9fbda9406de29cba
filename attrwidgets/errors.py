"""The one exception type users catch: every message says what was wrong and how to fix it."""

import difflib
import functools
import inspect


class AttrWidgetsError(ValueError):
    """Bad input to attrwidgets (prompt, method, option, model, saved file).

    Subclasses ValueError so code that already guards with `except ValueError` keeps working.
    """


class NonFiniteGradientError(AttrWidgetsError):
    """NaN or inf appeared in a gradient or an attribution; reported, never silently drawn."""


def checked_keywords(fn):
    """An unknown keyword (a typo like `levle=`) is an AttrWidgetsError naming the nearest valid one, not
    Python's TypeError: the compute functions are called from notebooks, where a hint saves a trip to the docs."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise TypeError(f"{fn.__name__} takes **kwargs: it checks its own keywords")
    valid = [name for name, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]

    @functools.wraps(fn)
    def call(*args, **kwargs):
        unknown = [k for k in kwargs if k not in parameters]
        if unknown:
            named = []
            for key in unknown:
                close = difflib.get_close_matches(key, valid, n=1)
                named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise AttrWidgetsError(f"{fn.__name__}() got unknown option(s) {', '.join(named)}. Valid options: "
                                   f"{', '.join(valid[2:] if len(valid) > 2 else valid)}.")
        return fn(*args, **kwargs)

    return call
