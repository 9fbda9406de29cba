"""The front-end's tensor decoding and checksum (js/lib) agree with the Python serializer, run in node."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from attrwidgets.widgets.serialization import checksum, serialize_tensor

from .support import node_script

ENTRY = """
import { readFileSync } from "node:fs";
import { decodeTensor, row } from "%(root)s/js/lib/tensor";
import { checksumFloat32 } from "%(root)s/js/lib/checksum";
const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = cases.map((c) => {
  const bytes = Buffer.from(c.base64, "base64");
  // An odd offset inside a larger buffer, as a DataView may arrive: decode must still be exact.
  const big = new Uint8Array(bytes.length + 1);
  big.set(bytes, 1);
  const t = decodeTensor({ buffer: new DataView(big.buffer, 1, bytes.length), dtype: c.dtype, shape: c.shape });
  const rows = [];
  for (let i = 0; i < c.shape[0]; i++) rows.push(checksumFloat32(row(t, i)));
  return { rows, values: Array.from(t.data, (v) => (Number.isNaN(v) ? "NaN" : v)) };
});
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def node_runner(tmp_path_factory):
    run_script = node_script(tmp_path_factory.mktemp("node"), ENTRY)

    def run(arrays, dtype="float32"):
        cases = []
        for a in arrays:
            wire = serialize_tensor(a, dtype=dtype)
            cases.append({"base64": base64.b64encode(wire["buffer"]).decode(), "dtype": dtype,
                          "shape": wire["shape"]})
        return run_script(cases)

    return run


def test_js_checksum_and_decode_match_python(node_runner):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 13)).astype(np.float32)
    a[1, 3:] = np.nan
    a[2] = 0.0
    b = np.arange(30, dtype=np.float64).reshape(5, 6).T  # non-contiguous, float64
    out = node_runner([a, b])
    for arr, res in zip([a, b], out):
        arr32 = np.ascontiguousarray(arr, np.float32)
        assert res["rows"] == [checksum(r) for r in arr32]
        values = np.array([np.nan if v == "NaN" else v for v in res["values"]], np.float32)
        np.testing.assert_array_equal(values.reshape(arr32.shape), arr32)


def test_js_decodes_float16_wire(node_runner):
    a = np.array([[0.1, -2.5, np.nan, 65504.0, 1e-6, -0.0]], np.float32)
    (res,) = node_runner([a], dtype="float16")
    values = np.array([np.nan if v == "NaN" else v for v in res["values"]], np.float32)
    np.testing.assert_array_equal(values, a[0].astype(np.float16).astype(np.float32))


LIVENESS = """
import { watchKernel } from "%(root)s/js/lib/liveness";
// A fake model: the kernel answers pings until `dies`, stays silent, then answers again from `revives`.
const t0 = Date.now();
const handlers = new Set();
const events = [];
const model = {
  send(msg) {
    const t = Date.now() - t0;
    if (msg.type === "aw:ping" && (t < 150 || t > 450))
      setTimeout(() => handlers.forEach((f) => f({ type: "aw:pong", id: msg.id })), 5);
  },
  on(ev, f) { if (ev === "msg:custom") handlers.add(f); },
  off(ev, f) { handlers.delete(f); },
};
const stop = watchKernel(model, (lost) => events.push([lost, Date.now() - t0]), { pingMs: 20, timeoutMs: 90 });
// A page with no kernel (no send): never a warning.
const quiet = [];
const stopQuiet = watchKernel({ on() {}, off() {} }, (lost) => quiet.push(lost), { pingMs: 20, timeoutMs: 60 });
setTimeout(() => { stop(); stopQuiet(); console.log(JSON.stringify({ events, quiet, left: handlers.size })); }, 700);
"""


def test_the_view_says_when_the_kernel_stops_answering_and_when_it_is_back(tmp_path):
    """js/lib/liveness.ts against a fake kernel that dies at 150 ms and comes back at 450 ms: one 'lost' about
    90 ms after the first unanswered ping, one 'back' after the kernel answers again; a page with no kernel
    never warns; stopping removes the handler. Python answers the ping (widgets/base.py)."""
    out = node_script(tmp_path, LIVENESS)(None)  # the script reads no input
    assert [lost for lost, _ in out["events"]] == [True, False], out
    (_, lost_at), (_, back_at) = out["events"]
    assert 150 + 60 <= lost_at <= 450 and back_at >= 450, out
    assert out["quiet"] == [] and out["left"] == 0

    from attrwidgets.widgets import TokenMatrix

    from .support import FakeSession

    view = TokenMatrix(session=FakeSession(), method="saliency").wait(10)
    sent = []
    view.send = lambda content, buffers=None: sent.append(content)
    view._answer_ping(view, {"type": "aw:ping", "id": 7}, [])
    view._answer_ping(view, {"type": "something else"}, [])
    assert sent == [{"type": "aw:pong", "id": 7}]
    view.close()
