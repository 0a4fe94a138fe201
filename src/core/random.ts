/**
 * mulberry32: a tiny, fast, seedable PRNG (32-bit state), identical on every platform; returns floats
 * in [0, 1). The one generator behind MC-dropout masks, the synthetic phantom's noise and the fuzzer,
 * so a seed means the same stream everywhere.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
