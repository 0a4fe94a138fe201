/**
 * Deterministic identities for batch results. A job runs at least once: when a worker dies after its
 * STOW but before the queue hears of it, another worker runs the same job again. Deriving the SEG and
 * Parametric Map UIDs from (study, series, model, version) makes the second STOW name the same
 * instances, which a PACS keeps once (Orthanc answers 200 and keeps the first copy), and lets the
 * worker ask the PACS whether the result is already there before it stores anything.
 */

/** What one result is a function of. */
export interface ResultKey {
  studyUID: string;
  seriesUID: string;
  modelId: string;
  modelVersion: string;
}

/**
 * A UUID-derived UID (PS3.5 B.2, "2.25." + the UUID as one decimal integer) whose UUID is name-based:
 * the first 128 bits of SHA-256 over the parts, with the RFC 9562 version 8 (custom) and variant bits.
 * At most 2.25. + 39 digits = 44 characters, within the 64 a UI allows.
 */
export async function derivedUid(...parts: string[]): Promise<string> {
  // "\u0000" cannot occur in a UID or a model id, so ("a.b", "c") and ("a", "b.c") never collide.
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(["edgeseg", ...parts].join("\u0000"))),
  );
  const bytes = digest.subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return `2.25.${n.toString()}`;
}

export interface ResultUids {
  seg: { series: string; instance: string; dimensionOrganization: string };
  pm: { series: string; instance: string; dimensionOrganization: string };
}

/** The SEG and Parametric Map UIDs of one result. */
export async function resultUids(key: ResultKey): Promise<ResultUids> {
  const base = [key.studyUID, key.seriesUID, key.modelId, key.modelVersion];
  const uid = (what: string) => derivedUid(...base, what);
  return {
    seg: {
      series: await uid("seg-series"),
      instance: await uid("seg-instance"),
      dimensionOrganization: await uid("seg-dimension-organization"),
    },
    pm: {
      series: await uid("pm-series"),
      instance: await uid("pm-instance"),
      dimensionOrganization: await uid("pm-dimension-organization"),
    },
  };
}

/**
 * The BullMQ job id of (study, model): adding a job whose id exists is a no-op, so the Orthanc hook
 * firing twice for one study, or an enqueue run repeated, queues it once. BullMQ refuses ids with ":"
 * (its key separator), hence "|"-free, ":"-free joining.
 */
export function jobIdFor(studyUID: string, modelId: string, seriesUID?: string): string {
  return `seg_${modelId.replace(/[^A-Za-z0-9._-]/g, "_")}_${studyUID}${seriesUID ? `_${seriesUID}` : ""}`;
}
