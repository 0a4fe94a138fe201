/** Typed errors. Every error has a `code` and a message that says what was expected and what was found. */

export class EdgeSegError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The input (volume, image, DICOM series) cannot be used as it is. */
export class InputError extends EdgeSegError {}

/** A model manifest is invalid or does not match its ONNX file. */
export class ManifestError extends EdgeSegError {
  readonly expected?: string;
  readonly actual?: string;
  constructor(code: string, message: string, detail: { expected?: string; actual?: string } = {}) {
    const extra = detail.expected !== undefined || detail.actual !== undefined
      ? ` (expected ${detail.expected ?? "?"}, found ${detail.actual ?? "?"})`
      : "";
    super(code, message + extra);
    this.expected = detail.expected;
    this.actual = detail.actual;
  }
}

/** No execution provider could run the model; `failures` lists each provider's reason. */
export class ProviderError extends EdgeSegError {
  readonly failures: { provider: string; reason: string }[];
  constructor(message: string, failures: { provider: string; reason: string }[]) {
    super(
      "NO_PROVIDER",
      `${message}: ${failures.map((f) => `${f.provider}: ${f.reason}`).join("; ")}`,
    );
    this.failures = failures;
  }
}

/** A DICOMweb request failed; `status` is the HTTP status (0 for a network error). */
export class DicomWebError extends EdgeSegError {
  readonly status: number;
  readonly responseText: string;
  constructor(status: number, message: string, responseText = "") {
    super(status === 0 ? "NETWORK" : `HTTP_${status}`, message);
    this.status = status;
    this.responseText = responseText;
  }
}

/** An object EdgeSeg writes would not conform to its IOD. */
export class ConformanceError extends EdgeSegError {}

/** The operation was cancelled through an AbortSignal. */
export class CancelledError extends EdgeSegError {
  constructor(message = "cancelled") {
    super("CANCELLED", message);
  }
}

/**
 * The host viewer (OHIF, Cornerstone3D, the browser) lacks something EdgeSeg needs, or behaved in a way
 * EdgeSeg cannot work with; the message names what was expected and what was found.
 */
export class ViewerError extends EdgeSegError {}

/** A file's bytes do not match the sha256 in its manifest. */
export class IntegrityError extends EdgeSegError {}
