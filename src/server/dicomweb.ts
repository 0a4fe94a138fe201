/**
 * DICOMweb (PS3.18) over the embedded store: QIDO-RS, WADO-RS (instances, metadata, frames, bulk data)
 * and STOW-RS, mounted at `/dicom-web/`. Answers the subset OHIF 3.13.2's dicomweb data source uses,
 * with the usual query filters. The three services live in qido.ts, wado.ts and stow.ts; this file holds
 * what they share and the routing.
 */
import { type ConcurrencyGate, matchDicomWebRoute } from "./guard.ts";
import type { DicomStore } from "./store.ts";
import { byInstanceNumber, qido } from "./qido.ts";
import { metadataResponse, notFound, retrieveBulk, retrieveFrames, retrieveInstances } from "./wado.ts";
import { gatedStow } from "./stow.ts";

export interface DicomWebOptions {
  maxUploadBytes: number;
  /** when set, STOW requires `Authorization: Bearer <token>` */
  stowToken?: string;
  /** time limit for receiving a STOW body (default 10 min) → 408 */
  uploadTimeoutMs?: number;
  /** bounds the STOW requests handled at once (503 + Retry-After beyond it) */
  stowGate?: ConcurrencyGate;
  log?: (line: string) => void;
}

export const EXPLICIT_LE = "1.2.840.10008.1.2.1";
export const JSON_HEADERS = { "content-type": "application/dicom+json; charset=utf-8" };

/** `{error, message}` JSON for 4xx/5xx answers. */
export function errorResponse(
  status: number,
  error: string,
  message: string,
  extra: HeadersInit = {},
): Response {
  return new Response(JSON.stringify({ error, message }), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...Object.fromEntries(new Headers(extra)) },
  });
}

// ---------------------------------------------------------------------------------------------
// Routing

/**
 * Handles a request whose path starts with `/dicom-web`. `subPath` is the rest (e.g. `/studies`).
 */
export function handleDicomWeb(
  store: DicomStore,
  req: Request,
  subPath: string,
  opts: DicomWebOptions,
): Response | Promise<Response> {
  const url = new URL(req.url);
  const base = `${url.origin}/dicom-web`;
  const path = subPath.replace(/\/+$/, "") || "/";
  const route = matchDicomWebRoute(path);
  if (!route) return errorResponse(404, "NOT_FOUND", `no DICOMweb resource at /dicom-web${path}`);
  const name = route.name;
  const [a, b, c, d] = route.groups;
  if (req.method === "POST") {
    if (name === "studies") return gatedStow(store, req, undefined, opts, base);
    if (name === "study") return gatedStow(store, req, a, opts, base);
    return errorResponse(
      405,
      "METHOD_NOT_ALLOWED",
      `POST is only accepted on /studies and /studies/{study}`,
      { allow: "GET, HEAD" },
    );
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    return errorResponse(405, "METHOD_NOT_ALLOWED", `${req.method} is not supported here`, {
      allow: "GET, HEAD, POST",
    });
  }
  const q = url.searchParams;
  const recs = () => store.records();
  switch (name) {
    case "studies":
      return qido(store, "study", {}, q, base);
    case "allSeries":
      return qido(store, "series", {}, q, base);
    case "allInstances":
      return qido(store, "instance", {}, q, base);
    case "studySeries":
      return qido(store, "series", { study: a }, q, base);
    case "studyInstances":
      return qido(store, "instance", { study: a }, q, base);
    case "seriesInstances":
      return qido(store, "instance", { study: a, series: b }, q, base);
    case "study":
    case "studyMetadata": {
      const list = recs().filter((r) => r.studyInstanceUID === a).sort(byInstanceNumber);
      if (!list.length) return notFound(`study ${a}`);
      return name === "study" ? retrieveInstances(store, list) : metadataResponse(store, list, base);
    }
    case "series":
    case "seriesMetadata": {
      const list = recs().filter((r) => r.studyInstanceUID === a && r.seriesInstanceUID === b).sort(
        byInstanceNumber,
      );
      if (!list.length) return notFound(`series ${b}`);
      return name === "series" ? retrieveInstances(store, list) : metadataResponse(store, list, base);
    }
    default: {
      const r = store.get(c);
      if (!r || r.studyInstanceUID !== a || r.seriesInstanceUID !== b) return notFound(`instance ${c}`);
      if (name === "instance") return retrieveInstances(store, [r]);
      if (name === "instanceMetadata") return metadataResponse(store, [r], base);
      if (name === "frames") return retrieveFrames(store, r, d, req, base);
      return retrieveBulk(store, r, d, req);
    }
  }
}
