"""core/hooks.py: a hook acts only in the thread that installed it, so views computing on other threads (or the
notebook's own) see the model's plain forward."""

from __future__ import annotations

import threading

import pytest
import torch

from attrwidgets.core.hooks import own_thread
from attrwidgets.testing import tiny_handle


class Stop(Exception):
    pass


def test_a_hook_acts_in_its_own_thread_only():
    handle = tiny_handle("llama")
    ids = torch.tensor([[3, 5, 7, 9]])
    with torch.no_grad():
        plain = handle.model(ids).logits
    installed, done = threading.Event(), threading.Event()
    seen = {}

    def stop(module, args):
        raise Stop

    def other_thread():
        hook = handle.model.model.layers[0].register_forward_pre_hook(own_thread(stop))
        installed.set()
        done.wait(30)
        try:
            with torch.no_grad():
                handle.model(ids)
        except Stop:
            seen["stopped"] = True
        finally:
            hook.remove()

    worker = threading.Thread(target=other_thread)
    worker.start()
    assert installed.wait(30)
    with torch.no_grad():
        here = handle.model(ids).logits  # the hook is there, but not this thread's
    done.set()
    worker.join(30)
    torch.testing.assert_close(here, plain, rtol=0, atol=0)
    assert seen == {"stopped": True}  # and in its own thread it acts


def test_the_guard_keeps_the_hooks_return_value_in_its_thread():
    doubled = own_thread(lambda module, args, out: out * 2)
    assert torch.equal(doubled(None, (), torch.ones(2)), torch.full((2,), 2.0))
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", doubled(None, (), torch.ones(2))))
    thread.start()
    thread.join(10)
    assert result == {"value": None}


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_boundaries_early_stop_never_reaches_another_threads_forward(arch):
    """Layer IG on a worker thread while the main thread generates: the regression that showed as a stray
    _Stop in the main thread's forward."""
    import attrwidgets as aw

    handle = tiny_handle(arch)
    errors = []

    def lig_loop():
        try:
            for _ in range(3):
                aw.lig(handle, "the cat sat on the mat", n_steps=2, granularity="all", layers=[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=lig_loop)
    worker.start()
    ids = torch.tensor([[3, 5, 7, 9, 11]])
    with torch.no_grad():
        reference = handle.model(ids).logits
        while worker.is_alive():
            torch.testing.assert_close(handle.model(ids).logits, reference)
    worker.join(60)
    assert errors == []
