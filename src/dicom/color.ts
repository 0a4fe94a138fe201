/**
 * sRGB (0..255) ↔ DICOM RecommendedDisplayCIELabValue (PS3.3 C.10.7.1.1: CIELab under D65, L* 0..100
 * → 0..65535, a* and b* −128..127 → 0..65535). The conversion is the full one (sRGB transfer curve
 * → linear RGB → XYZ → Lab), not the linear approximation some writers use.
 */
import type { Vec3 } from "../core/types.ts";

const D65: Vec3 = [0.95047, 1.0, 1.08883];

function srgbToLinear(c: number): number {
  const x = c / 255;
  return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
}
function linearToSrgb(x: number): number {
  const c = x <= 0.0031308 ? 12.92 * x : 1.055 * Math.pow(x, 1 / 2.4) - 0.055;
  return Math.min(255, Math.max(0, Math.round(c * 255)));
}

export function srgbToLab(rgb: Vec3): Vec3 {
  const [r, g, b] = rgb.map(srgbToLinear);
  const x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / D65[0];
  const y = (0.2126729 * r + 0.7151522 * g + 0.072175 * b) / D65[1];
  const z = (0.0193339 * r + 0.119192 * g + 0.9503041 * b) / D65[2];
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const fx = f(x), fy = f(y), fz = f(z);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

export function labToSrgb(lab: Vec3): Vec3 {
  const fy = (lab[0] + 16) / 116;
  const fx = fy + lab[1] / 500;
  const fz = fy - lab[2] / 200;
  const inv = (t: number) => (t ** 3 > 216 / 24389 ? t ** 3 : (116 * t - 16) / (24389 / 27));
  const x = inv(fx) * D65[0], y = inv(fy) * D65[1], z = inv(fz) * D65[2];
  const r = 3.2404542 * x - 1.5371385 * y - 0.4985314 * z;
  const g = -0.969266 * x + 1.8760108 * y + 0.041556 * z;
  const b = 0.0556434 * x - 0.2040259 * y + 1.0572252 * z;
  return [linearToSrgb(r), linearToSrgb(g), linearToSrgb(b)];
}

/** sRGB 0..255 → the three unsigned 16-bit values DICOM stores. */
export function srgbToDicomLab(rgb: Vec3): Vec3 {
  const [l, a, b] = srgbToLab(rgb);
  const clamp = (v: number) => Math.min(65535, Math.max(0, Math.round(v)));
  return [clamp(l * 65535 / 100), clamp((a + 128) * 65535 / 255), clamp((b + 128) * 65535 / 255)];
}

export function dicomLabToSrgb(v: Vec3): Vec3 {
  return labToSrgb([v[0] * 100 / 65535, v[1] * 255 / 65535 - 128, v[2] * 255 / 65535 - 128]);
}
