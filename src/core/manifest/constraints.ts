/** The `constraints` block: what input a model accepts (modalities, body parts, channels, size). */
import type { ModelManifest } from "../types.ts";
import { MODALITY, noUnknown, num, obj, req, str, strArr } from "./fields.ts";

/** Reads `constraints`; its channel count is needed by preprocessing and the region of interest. */
export function constraintsField(v: unknown, path: string): ModelManifest["constraints"] {
  const c = obj(v, path);
  noUnknown(c, path, ["modalities", "bodyParts", "channels", "minSlices", "maxVoxels"]);
  const constraints: ModelManifest["constraints"] = {
    modalities: strArr(req(c, "modalities", path), `${path}.modalities`, true).map((s, i) =>
      str(s, `${path}.modalities[${i}]`, {
        pattern: MODALITY,
        hint: "a DICOM modality code such as CT, MR or OP",
      })
    ),
    channels: num(req(c, "channels", path), `${path}.channels`, { int: true, min: 1, max: 4 }),
  };
  if (c.bodyParts !== undefined) constraints.bodyParts = strArr(c.bodyParts, `${path}.bodyParts`, true);
  if (c.minSlices !== undefined) {
    constraints.minSlices = num(c.minSlices, `${path}.minSlices`, { int: true, min: 1 });
  }
  if (c.maxVoxels !== undefined) {
    constraints.maxVoxels = num(c.maxVoxels, `${path}.maxVoxels`, { int: true, min: 1 });
  }
  return constraints;
}
