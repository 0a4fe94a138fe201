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

/**
 * A coarse chest phantom in HU for the region-of-interest path: air around an elliptic body (40 HU)
 * on every slice and two lungs (-850 HU, about 320 mL together) on slices 3..6 of 10; 4 mm pixels and
 * 10 mm slices, so each 64² slice is one window of the lung model.
 */
export function makeChestPhantom(): Volume {
  const [nx, ny, nz] = [64, 64, 10];
  const data = new Int16Array(nx * ny * nz);
  for (let k = 0, p = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, p++) {
        const body = ((i - 32) / 28) ** 2 + ((j - 32) / 22) ** 2 <= 1;
        const lung = k >= 3 && k <= 6 &&
          (((i - 20) / 9) ** 2 + ((j - 30) / 13) ** 2 <= 1 ||
            ((i - 44) / 9) ** 2 + ((j - 30) / 13) ** 2 <= 1);
        data[p] = !body ? -1000 : lung ? -850 : 40;
      }
    }
  }
  return {
    geometry: {
      dims: [nx, ny, nz],
      spacing: [4, 4, 10],
      origin: [0, 0, 0],
      direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
    },
    channels: 1,
    data,
    modality: "CT",
  };
}
