/** Fuzz target "manifest": mutated model manifests → validateManifest. */
import { join } from "node:path";
import { ManifestError } from "../../core/errors.ts";
import { validateManifest } from "../../core/manifest.ts";
import { genericMutation, Rng, utf8 } from "../mutators.ts";
import { existsSync, type FuzzTarget, guarded, PROJECT_ROOT } from "./common.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const ODD_VALUES: Json[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  2 ** 53 + 1,
  "",
  "x",
  "../../etc/passwd",
  "\u0000",
  "9".repeat(400),
  [],
  [0],
  [[]],
  {},
  { "x-a": 1 },
  "a".repeat(100_000),
];

/** Paths to every value in a JSON tree. */
function jsonPaths(
  v: Json,
  path: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  out.push(path);
  if (Array.isArray(v)) v.forEach((x, i) => jsonPaths(x, [...path, i], out));
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) jsonPaths(x, [...path, k], out);
  }
  return out;
}

function mutateJson(root: Json, rng: Rng): Json {
  const copy: Json = structuredClone(root);
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    const paths = jsonPaths(copy).filter((p) => p.length > 0);
    if (!paths.length) break;
    const p = rng.pick(paths);
    let parent: Json = copy;
    for (const seg of p.slice(0, -1)) parent = (parent as Record<string | number, Json>)[seg];
    const last = p[p.length - 1];
    const container = parent as Record<string | number, Json>;
    const cur = container[last];
    const op = rng.int(6);
    if (op === 0) {
      if (Array.isArray(container)) container.splice(last as number, 1);
      else delete container[last];
    } else if (op === 1 && typeof cur === "number") {
      container[last] = rng.pick([cur + 1, cur - 1, -cur, cur * 1e6, 0, cur / 3]);
    } else if (op === 2 && Array.isArray(cur)) {
      // duplicate or empty an array (labels, channels, files)
      container[last] = rng.chance(0.5) ? [] : [...cur, ...cur];
    } else if (op === 3 && typeof cur === "string") {
      container[last] = rng.pick([cur + cur, cur.slice(1), cur.toUpperCase(), "", `${cur}\u202e`]);
    } else if (op === 4 && !Array.isArray(container)) {
      container[rng.pick(["overlapp", "constructor", "toString", "x-note", "labels2"])] = rng.pick(
        ODD_VALUES,
      );
    } else container[last] = rng.pick(ODD_VALUES);
  }
  return copy;
}

export function manifestTarget(): FuzzTarget {
  let texts: string[] = [];
  let trees: Json[] = [];
  return {
    name: "manifest",
    description: "mutated model manifests (JSON text and JSON structure) → JSON.parse + validateManifest",
    async setup() {
      const dir = join(PROJECT_ROOT, "tests", "fixtures", "models");
      texts = [];
      for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
        const p = join(dir, e.name, "manifest.json");
        if (existsSync(p)) texts.push(await Deno.readTextFile(p));
      }
      if (!texts.length) throw new Error(`no manifests under tests/fixtures/models`);
      trees = texts.map((t) => JSON.parse(t) as Json);
      return `${texts.length} fixture manifests`;
    },
    input(rng, index) {
      const k = index % texts.length;
      if (rng.chance(0.3)) return new TextDecoder().decode(genericMutation(utf8.encode(texts[k]), rng));
      return JSON.stringify(mutateJson(trees[k], rng));
    },
    run: (input) =>
      guarded(() => {
        let json: unknown;
        try {
          json = JSON.parse(input as string);
        } catch (e) {
          // what loadPackage does with unparsable manifest.json
          throw new ManifestError("MANIFEST_JSON", "manifest.json is not valid JSON", {
            expected: "a JSON object",
            actual: e instanceof Error ? e.message : String(e),
          });
        }
        validateManifest(json);
        return Promise.resolve();
      }),
    teardown: () => Promise.resolve(),
  };
}
