"""The one exception type users catch: every message says what was wrong and how to fix it."""


class AttrWidgetsError(ValueError):
    """Bad input to attrwidgets (prompt, method, option, model, saved file).

    Subclasses ValueError so code that already guards with `except ValueError` keeps working.
    """


class NonFiniteGradientError(AttrWidgetsError):
    """NaN or inf appeared in a gradient or an attribution; reported, never silently drawn."""
