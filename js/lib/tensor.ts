// Decode the {buffer, dtype, shape} dicts made by attrwidgets/widgets/serialization.py.
import type { TensorDict } from "../types";

export interface Tensor {
  data: Float32Array; // C order
  shape: number[];
}

function bytesOf(buffer: TensorDict["buffer"]): Uint8Array {
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

// IEEE half -> single; NaN and infinities kept.
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function decodeTensor(t: TensorDict | null | undefined): Tensor | null {
  if (!t || !t.buffer) return null;
  const shape = t.shape.slice();
  const n = shape.reduce((a, b) => a * b, 1);
  const bytes = bytesOf(t.buffer);
  if (t.dtype === "float16") {
    const out = new Float32Array(n);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
    return { data: out, shape };
  }
  if (t.dtype !== "float32") throw new Error(`unsupported tensor dtype ${String(t.dtype)}`);
  if (bytes.byteLength !== 4 * n) {
    throw new Error(`tensor buffer has ${bytes.byteLength} bytes, shape [${shape}] needs ${4 * n}`);
  }
  // A Float32Array view needs a 4-byte aligned offset; copy in the rare case it is not.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return { data: new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4), shape };
}

/** A 1-D trait that may arrive as a tensor dict or a plain list (null -> NaN). */
export function decodeVector(v: TensorDict | (number | null)[] | null | undefined): Float32Array | null {
  if (v == null) return null;
  if (Array.isArray(v)) return Float32Array.from(v, (x) => (x == null ? NaN : x));
  return decodeTensor(v)?.data ?? null;
}

/** Row i of a 2-D tensor, sharing memory. */
export function row(t: Tensor, i: number): Float32Array {
  const cols = t.shape[1] ?? 0;
  return t.data.subarray(i * cols, (i + 1) * cols);
}

/** Encode a float32 array as a tensor dict (export_html's fake model and tests). */
export function encodeTensor(data: Float32Array, shape: number[]): TensorDict {
  return { buffer: new DataView(data.buffer, data.byteOffset, data.byteLength), dtype: "float32", shape };
}
