/**
 * `deno task fetch-ohif [--all]`: the served OHIF version, or every pinned one (CI's deployment tests
 * use both), fetched once with `npm pack`, integrity-checked and cached (src/server/ohif.ts).
 */
import { ensureOhif, OHIF_INTEGRITIES, OHIF_VERSION } from "../server/ohif.ts";

if (import.meta.main) {
  const versions = Deno.args.includes("--all") ? Object.keys(OHIF_INTEGRITIES) : [OHIF_VERSION];
  for (const version of versions) console.log(await ensureOhif({ version, log: (l) => console.error(l) }));
}
