/**
 * UID generation: "2.25." + a random 128-bit integer in decimal (PS3.5 B.2, UUID-derived UIDs), so
 * no organisational root is needed and UIDs are unique without coordination. Pure (Web Crypto).
 */
export function newUid(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  // RFC 4122 version 4 variant bits, as PS3.5 B.2 asks for a UUID
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return `2.25.${n.toString()}`;
}

/** DICOM DA and TM strings for a date (local wall clock is not meaningful here: UTC). */
export function dicomDateTime(now: Date): { date: string; time: string } {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return {
    date: `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}`,
    time: `${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`,
  };
}
