/** Fuzz target "nifti": mutated NIfTI headers and bodies → the NIfTI reader. */
import type { Mat3 } from "../../core/types.ts";
import { readNifti, writeNifti } from "../../io/nifti.ts";
import { genericMutation, niftiField, truncate } from "../mutators.ts";
import { type FuzzTarget, guarded } from "./common.ts";

export function niftiTarget(): FuzzTarget {
  let plain: Uint8Array[] = [];
  let gz: Uint8Array[] = [];
  return {
    name: "nifti",
    description: "mutated NIfTI-1 files (header fields, truncation, gzip stream) → readNifti",
    async setup() {
      const geom = (dims: [number, number, number]) => ({
        dims,
        spacing: [0.8, 0.9, 2.5] as [number, number, number],
        origin: [-10, 20, 5] as [number, number, number],
        direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] as Mat3,
      });
      const a = new Int16Array(12 * 10 * 4).map((_, i) => (i * 37) % 2000 - 1000);
      const b = new Float32Array(7 * 5 * 3).map((_, i) => i / 7);
      const c = new Uint8Array(9 * 9 * 2).map((_, i) => i % 3);
      plain = [
        await writeNifti(geom([12, 10, 4]), a, false),
        await writeNifti(geom([7, 5, 3]), b, false),
        await writeNifti(geom([9, 9, 2]), c, false),
      ];
      gz = await Promise.all(
        plain.map(async (_, i) =>
          await writeNifti(geom(i === 0 ? [12, 10, 4] : i === 1 ? [7, 5, 3] : [9, 9, 2]), [a, b, c][i], true)
        ),
      );
      return `${plain.length} writeNifti outputs (int16, float32, uint8), plain and gzipped`;
    },
    input(rng, index) {
      const k = index % plain.length;
      const m = rng.int(10);
      if (m < 5) return niftiField(plain[k], rng);
      if (m < 6) return truncate(plain[k], rng);
      if (m < 8) return genericMutation(plain[k], rng);
      return genericMutation(gz[k], rng);
    },
    run: (input) => guarded(() => readNifti(input as Uint8Array)),
    teardown: () => Promise.resolve(),
  };
}
