export * from "./types.ts";
export * from "./errors.ts";
export * from "./manifest.ts";
export * from "./contract.ts";
