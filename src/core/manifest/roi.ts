/** The `roi` block: the region of interest computed from CT numbers before inference. */
import type { ModelManifest, RoiSpec } from "../types.ts";
import { fail, noUnknown, num, obj, oneOf, req } from "./fields.ts";

/** CT numbers a threshold may take: air is about -1000 HU, dense bone and metal reach a few thousand. */
const HU_RANGE = { min: -2000, max: 4000 };

/** Reads `roi`; a region read from Hounsfield units needs a one-channel CT model. */
export function roiField(v: unknown, path: string, constraints: ModelManifest["constraints"]): RoiSpec {
  const o = obj(v, path);
  const kind = oneOf(req(o, "kind", path), `${path}.kind`, ["lungs-from-hu", "body-from-hu"] as const);
  const common = ["kind", "bodyHu", "openingMm", "marginMm", "croppedBorderFraction"];
  noUnknown(o, path, kind === "lungs-from-hu" ? [...common, "airHu", "minComponentMl"] : common);
  // the region is computed from Hounsfield units of a single channel: CT only
  const notCt = constraints.modalities.filter((m) => m !== "CT");
  if (notCt.length) {
    fail(
      "MANIFEST_INCONSISTENT",
      `${path}.kind`,
      `"${kind}" reads Hounsfield units, so every constraints.modalities entry must be CT`,
      '["CT"]',
      JSON.stringify(constraints.modalities),
    );
  }
  if (constraints.channels !== 1) {
    fail(
      "MANIFEST_INCONSISTENT",
      `${path}.kind`,
      `"${kind}" reads one channel of CT numbers`,
      "constraints.channels = 1",
      String(constraints.channels),
    );
  }
  const out: RoiSpec = {
    kind,
    marginMm: num(req(o, "marginMm", path), `${path}.marginMm`, { min: 0, max: 200 }),
  };
  if (o.bodyHu !== undefined) out.bodyHu = num(o.bodyHu, `${path}.bodyHu`, HU_RANGE);
  if (o.airHu !== undefined) out.airHu = num(o.airHu, `${path}.airHu`, HU_RANGE);
  if (o.openingMm !== undefined) out.openingMm = num(o.openingMm, `${path}.openingMm`, { min: 0, max: 50 });
  if (o.minComponentMl !== undefined) {
    out.minComponentMl = num(o.minComponentMl, `${path}.minComponentMl`, { min: 0 });
  }
  if (o.croppedBorderFraction !== undefined) {
    out.croppedBorderFraction = num(o.croppedBorderFraction, `${path}.croppedBorderFraction`, {
      min: 0,
      max: 1,
    });
  }
  return out;
}
