/** A small CT-like test volume, built identically in the page and in Deno for exact comparisons. */
import type { Volume } from "../../../src/core/types.ts";

export function makeTestVolume(dims: [number, number, number]): Volume {
  const [nx, ny, nz] = dims;
  const data = new Int16Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        data[i + nx * (j + ny * k)] = Math.round(300 * Math.sin(i * 0.21) * Math.cos(j * 0.17) + 30 * k);
      }
    }
  }
  return {
    geometry: {
      dims: [nx, ny, nz],
      spacing: [0.8, 0.8, 2.5],
      origin: [-10, -20, 30],
      direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
    },
    channels: 1,
    data,
    modality: "CT",
  };
}
