import functools

import pytest
import torch

torch.set_num_threads(max(1, torch.get_num_threads()))
ARCHS = ("llama", "qwen2", "gpt2")


@functools.cache
def _tiny(arch: str):
    from attrwidgets.testing import tiny_handle

    return tiny_handle(arch, seed=0)


@pytest.fixture(params=ARCHS)
def tiny(request):
    return _tiny(request.param)


@pytest.fixture
def tiny_llama():
    return _tiny("llama")


@pytest.fixture(scope="session")
def real_model():
    import attrwidgets

    return attrwidgets.load_model()
