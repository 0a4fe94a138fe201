/** Fuzz target "qido": mutated QIDO-RS queries against a live embedded store. */
import { phantomSeries } from "../../dicom/phantom.ts";
import { handleDicomWeb } from "../../server/dicomweb.ts";
import { type RunningServer, startServer } from "../../server/mod.ts";
import { genericMutation, utf8 } from "../mutators.ts";
import type { FuzzTarget } from "./common.ts";

const QIDO_KEYS = [
  "PatientName",
  "PatientID",
  "StudyDate",
  "StudyTime",
  "AccessionNumber",
  "ModalitiesInStudy",
  "Modality",
  "StudyInstanceUID",
  "SeriesInstanceUID",
  "SOPInstanceUID",
  "SeriesNumber",
  "InstanceNumber",
  "StudyDescription",
  "00100010",
  "0020000D",
  "includefield",
  "limit",
  "offset",
  "fuzzymatching",
  "PatientBirthDate",
  "ReferringPhysicianName",
  "NoSuchKeyword",
  "0010",
  "",
];
const QIDO_VALUES = [
  "*",
  "?",
  "**",
  "A*",
  "*a*b*c*d*e*f*g*",
  "PHANTOM*",
  "20240115",
  "20240101-20241231",
  "-20240115",
  "20240115-",
  "2024",
  "99999999",
  "20241332",
  "-",
  "--",
  "120000-",
  "1.2.3,4.5.6",
  "\\",
  "\\\\",
  "all",
  "0",
  "-1",
  "1e309",
  "NaN",
  "99999999999999999999",
  "true",
  "CT",
  "CT\\MR",
  "%",
  "%ZZ",
  "%00",
  "\u0000",
  "\ud800",
  "'",
  '"',
  "(a+)+$",
  "[",
  "x".repeat(10_000),
  "00100010,00080020",
  "PatientName,Nope",
  "",
];

/** encodeURIComponent, with lone surrogates (which it refuses) replaced by U+FFFD first. */
function safeEncode(s: string): string {
  return encodeURIComponent(s.replace(/[\ud800-\udfff]/g, (c, i: number) => {
    const code = c.charCodeAt(0);
    const next = s.charCodeAt(i + 1), prev = s.charCodeAt(i - 1);
    const paired = code < 0xdc00 ? next >= 0xdc00 && next <= 0xdfff : prev >= 0xd800 && prev < 0xdc00;
    return paired ? c : "\ufffd";
  }));
}

export function qidoTarget(): FuzzTarget {
  let server: RunningServer | undefined;
  let dataDir = "";
  const paths = ["/studies", "/series", "/instances"];
  return {
    name: "qido",
    description:
      "random and mutated QIDO-RS query strings → the store's DICOMweb handler (seeded phantom study)",
    async setup() {
      dataDir = await Deno.makeTempDir({ prefix: "edgeseg-fuzz-qido-" });
      server = await startServer({ port: 0, hostname: "127.0.0.1", dataDir, seed: true });
      const ph = phantomSeries();
      paths.push(`/studies/${ph.studyInstanceUID}/series`, `/studies/${ph.studyInstanceUID}/instances`);
      paths.push(`/studies/${ph.studyInstanceUID}/series/${ph.seriesInstanceUID}/instances`);
      return `embedded store seeded with the phantom study (${server.store!.size} instances)`;
    },
    input(rng) {
      const n = rng.int(5);
      const parts: string[] = [];
      for (let i = 0; i < n; i++) {
        const k = rng.pick(QIDO_KEYS);
        let v = rng.pick(QIDO_VALUES);
        if (rng.chance(0.3)) v = new TextDecoder().decode(genericMutation(utf8.encode(v), rng));
        // half the time encoded correctly, half raw (malformed percent-escapes reach the parser)
        parts.push(rng.chance(0.5) ? `${safeEncode(k)}=${safeEncode(v)}` : `${k}=${v}`);
      }
      return `${rng.pick(paths)}?${parts.join("&")}`;
    },
    async run(raw) {
      const pathAndQuery = raw as string;
      let req: Request;
      try {
        req = new Request(`http://127.0.0.1/dicom-web${pathAndQuery}`, {
          headers: { accept: "application/dicom+json" },
        });
      } catch (e) {
        // the URL itself cannot be built: an HTTP server would answer 400 before reaching us
        if (e instanceof TypeError) return { rejected: "HTTP_400_BAD_URL" };
        throw e;
      }
      const subPath = new URL(req.url).pathname.slice("/dicom-web".length);
      const res = await handleDicomWeb(server!.store!, req, subPath, { maxUploadBytes: 1 << 20 });
      const text = await res.text();
      if (res.status >= 500) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
      if (res.status >= 400) {
        let code = "";
        try {
          code = String((JSON.parse(text) as { error?: unknown }).error ?? "");
        } catch {
          throw new Error(`HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
        }
        return { rejected: `HTTP_${res.status}_${code}` };
      }
      if (res.status === 200) {
        const json: unknown = JSON.parse(text);
        if (!Array.isArray(json)) throw new Error(`HTTP 200 with a body that is not a JSON array`);
      }
      return "ok";
    },
    async teardown() {
      await server?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}
