"""The one exception type users catch: every message says what was wrong and how to fix it."""

import difflib
import functools
import inspect
import warnings


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


def rename_keywords(caller: str | None, options: dict, new_name_of: dict[str, str]) -> dict:
    """`options` with old keyword names replaced by their new ones. `caller` names the function or view in the
    DeprecationWarning; None renames silently (options read back from a result saved under the old names)."""
    out = dict(options)
    for old, new in new_name_of.items():
        if old not in out:
            continue
        if new in out:
            raise AttrWidgetsError(f"{caller or 'options'} got both {old!r} and {new!r}: {old!r} is the old name of "
                                   f"{new!r}; pass only {new}=.")
        if caller is not None:
            warnings.warn(f"{caller}: {old}= is renamed {new}=; the old name will be removed.", DeprecationWarning,
                          stacklevel=3)
        out[new] = out.pop(old)
    return out


def renamed_keywords(**new_name_of):
    """Old keyword names that still work, with a DeprecationWarning naming the new one. One keyword means one
    thing across families (docs/architecture.md): `n_steps` integrates, `denoising_steps` samples,
    `training_steps` trains; a plain `steps` said none of these. Passing both names is an error."""

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            return fn(*args, **rename_keywords(f"{fn.__name__}()", kwargs, new_name_of))

        call.renamed_keywords = dict(new_name_of)
        return call

    return wrap


def _warn_renamed(owner: object, old: str, new: str) -> None:
    warnings.warn(f"{type(owner).__name__}.{old} is renamed {new}; the old name will be removed.", DeprecationWarning,
                  stacklevel=3)


def renamed_method(old: str, new: str):
    """A method kept under its old name: it warns (DeprecationWarning) and calls the new one."""

    def method(self, *args, **kwargs):
        _warn_renamed(self, f"{old}()", f"{new}()")
        return getattr(self, new)(*args, **kwargs)

    method.__name__ = method.__qualname__ = old
    method.__doc__ = f"The old name of {new}()."
    return method


def renamed_attribute(old: str, new: str, *, settable: bool = False) -> property:
    """An attribute kept under its old name: reading (and setting, when settable) it warns and uses the new one."""

    def get(self):
        _warn_renamed(self, old, new)
        return getattr(self, new)

    def set_(self, value) -> None:
        _warn_renamed(self, old, new)
        setattr(self, new, value)

    return property(get, set_ if settable else None, doc=f"The old name of {new}.")
