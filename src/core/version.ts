/** EdgeSeg's version: read from package.json, the one place it is written. */
import pkg from "../../package.json" with { type: "json" };

export const EDGESEG_VERSION: string = pkg.version;
/** Software name and version as written into provenance and DICOM (SoftwareVersions). */
export const SOFTWARE = `EdgeSeg ${EDGESEG_VERSION}`;
