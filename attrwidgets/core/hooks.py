"""Forward hooks that act only in the thread that installed them.

A model is shared: views built on different aw.Source objects compute on different worker threads, and the
notebook's own thread may run the same model meanwhile (a new view generating its continuation). A module hook
is seen by every forward through that module, in any thread, so a hook that records, replaces or stops a
forward (core/boundaries.py's early stop, core/frozen.py's recording) would act on another thread's forward:
wrong numbers there, or an exception that is not its own. Every hook the package installs goes through
own_thread, and a forward in any other thread passes through untouched.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable


def own_thread(hook: Callable) -> Callable:
    owner = threading.get_ident()

    @functools.wraps(hook)
    def guarded(*args, **kwargs):
        if threading.get_ident() != owner:
            return None  # another thread's forward: leave its inputs and outputs alone
        return hook(*args, **kwargs)

    return guarded
