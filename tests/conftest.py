import functools
import os

# No model hub at test time (only the package registries are reachable): an unknown model id must fail at
# once from the local cache instead of retrying the network. Set before transformers is first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

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
