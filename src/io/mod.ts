export * from "./nifti.ts";
export * from "./image2d.ts";
