/**
 * What the ophthalmic image IODs EdgeSeg writes share (PS3.3 A.39 Ophthalmic Photography, A.41
 * Ophthalmic Tomography): the eye that was imaged (Ocular Region Imaged, C.8.17.5), the
 * Synchronization module an ophthalmic acquisition carries, and the coded concepts they name. The
 * photograph wrapper (wrap_image.ts) and the OCT phantom (oct_phantom.ts) both build on it.
 */
import { InputError } from "../core/errors.ts";
import type { Code } from "../core/types.ts";
import { codeItem } from "./codes.ts";
import type { NaturalizedDataset } from "./dataset.ts";

export type Eye = "R" | "L";

export const OphthalmicCodes = {
  /** CID 4209 Ophthalmic Anatomic Structure */
  eye: { value: "81745001", scheme: "SCT", meaning: "Eye" },
  /** CID 4202 Ophthalmic Image Acquisition Device */
  fundusCamera: { value: "409898007", scheme: "SCT", meaning: "Fundus Camera" },
  /** CID 4210 Ophthalmic Tomography Acquisition Device */
  octScanner: { value: "392012008", scheme: "SCT", meaning: "Optical Coherence Tomography Scanner" },
} as const satisfies Record<string, Code>;

/**
 * The eye, checked: ImageLaterality is Type 1 in both IODs and cannot be guessed from pixels.
 * Throws InputError MISSING_LATERALITY naming what was found.
 */
export function requireEye(laterality: unknown, what: string): Eye {
  if (laterality !== "R" && laterality !== "L") {
    throw new InputError(
      "MISSING_LATERALITY",
      `${what} must say which eye it shows (ImageLaterality, Type 1): expected ` +
        `laterality "R" or "L", found ${JSON.stringify(laterality ?? null)}`,
    );
  }
  return laterality;
}

/** Ocular Region Imaged module (C.8.17.5): the eye and the anatomic region (the eye as a whole). */
export function ocularRegionImaged(eye: Eye): NaturalizedDataset {
  return { ImageLaterality: eye, AnatomicRegionSequence: [codeItem(OphthalmicCodes.eye)] };
}

/**
 * Synchronization module (C.7.4.2): the frame of reference the derived SEG names is also the one a
 * synchronised acquisition would share; nothing here was triggered or time-synchronised.
 */
export function synchronization(frameOfReferenceUID: string): NaturalizedDataset {
  return {
    SynchronizationFrameOfReferenceUID: frameOfReferenceUID,
    SynchronizationTrigger: "NO TRIGGER",
    AcquisitionTimeSynchronized: "N",
  };
}

/**
 * The acquisition parameters both IODs list as Type 2 (C.8.17.2 / C.8.17.8) that a converted or
 * synthetic image does not know: present and empty.
 */
export function unknownAcquisitionParameters(): NaturalizedDataset {
  return {
    HorizontalFieldOfView: [],
    EmmetropicMagnification: [],
    IntraOcularPressure: [],
    RefractiveStateSequence: [],
    PupilDilated: "",
  };
}
