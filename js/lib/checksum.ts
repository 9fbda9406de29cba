// FNV-1a 32-bit over the raw little-endian float32 bytes of an array, as 8 hex digits.
// Identical to attrwidgets.widgets.serialization.checksum(); tests compare the two.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function fnv1a(bytes: Uint8Array): string {
  let h = FNV_OFFSET;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, FNV_PRIME) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

export function checksumFloat32(values: Float32Array): string {
  return fnv1a(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}
