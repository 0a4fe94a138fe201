/**
 * Value representations by how explicit VR encodes their length (PS3.5 §7.1.2): the long ones have two
 * reserved bytes and a 4-byte length, the short ones a 2-byte length. One list for the writer, the
 * STOW header walk and the fuzzer.
 */
// deno-fmt-ignore
export const LONG_VRS: ReadonlySet<string> = new Set([
  "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV",
]);

// deno-fmt-ignore
export const SHORT_VRS: ReadonlySet<string> = new Set([
  "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SS", "ST",
  "TM", "UI", "UL", "US",
]);
