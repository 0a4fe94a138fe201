/**
 * deno task queue status [--redis <url>] [--json]
 * deno task queue export [--redis <url>] [--csv cohort.csv] [--json cohort.json]
 * deno task queue retry  [--redis <url>] [--study <uid>]…
 *
 * The batch queue from the outside: counts (waiting / active / retrying / done / failed), each failed
 * study with its reason, throughput and ETA; the cohort table of finished jobs; re-running failures.
 * `--redis` defaults to EDGESEG_REDIS, then redis://127.0.0.1:6379.
 */
import { InputError } from "../core/errors.ts";
import { cohortCsv, rowFromFailure, rowFromResult } from "../queue/export.ts";
import type { CohortRow } from "../queue/export.ts";
import { allJobs, openQueue, queueStatus, retryFailed } from "../queue/jobs.ts";
import type { QueueStatus } from "../queue/jobs.ts";
import { flag, hasFlag, parseArgs } from "./args.ts";
import { reportError } from "./common.ts";
import { writeFileAtomic } from "./output.ts";

const USAGE = `usage: deno task queue status [--redis <url>] [--json]
       deno task queue export [--redis <url>] [--csv <file>] [--json <file>]
       deno task queue retry  [--redis <url>] [--study <uid>]…`;

function duration(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function formatStatus(st: QueueStatus): string {
  const c = st.counts;
  const lines = [
    `waiting ${c.waiting} · active ${c.active} · retrying ${c.delayed} · done ${c.done} · failed ${c.failed}`,
    `throughput ${
      st.throughputPerHour === null
        ? "- (fewer than two jobs done)"
        : `${st.throughputPerHour.toFixed(1)} studies/h`
    }` +
    ` · ETA ${
      st.etaSeconds === null ? "unknown" : st.etaSeconds === 0 ? "nothing left" : duration(st.etaSeconds)
    }`,
  ];
  for (const a of st.active) {
    lines.push(`  active   ${a.studyUID} ${a.model}${a.startedAt ? ` since ${a.startedAt}` : ""}`);
  }
  for (const r of st.retrying) {
    lines.push(`  retrying ${r.studyUID} ${r.model} after ${r.attempts} tries: ${r.reason}`);
  }
  for (const f of st.failed) {
    lines.push(`  failed   ${f.studyUID} ${f.model} after ${f.attempts} tries: ${f.reason}`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const [command, ...rest] = Deno.args;
  const args = parseArgs(rest, command === "status" ? ["help", "json"] : ["help"]);
  if (!command || command === "--help" || args.flags.has("help")) {
    console.log(USAGE);
    return;
  }
  const redis = flag(args, "redis") ?? Deno.env.get("EDGESEG_REDIS") ?? "redis://127.0.0.1:6379";
  const queue = openQueue(redis);
  try {
    if (command === "status") {
      const st = await queueStatus(queue);
      console.log(
        hasFlag(args, "json") ? JSON.stringify(st, null, 2) : formatStatus(st),
      );
    } else if (command === "export") {
      const rows: CohortRow[] = [];
      for (const j of await allJobs(queue, "completed")) {
        if (j.returnvalue) rows.push(rowFromResult(j.returnvalue, j.finishedOn));
      }
      for (const j of await allJobs(queue, "failed")) {
        rows.push(rowFromFailure(j.data, j.failedReason ?? "", j.finishedOn));
      }
      rows.sort((a, b) => a.studyUID.localeCompare(b.studyUID) || a.model.localeCompare(b.model));
      const csv = flag(args, "csv");
      const json = flag(args, "json");
      if (!csv && !json) throw new InputError("ARG_REQUIRED", `export needs --csv and/or --json\n${USAGE}`);
      if (csv) await writeFileAtomic(csv, cohortCsv(rows));
      if (json) {
        await writeFileAtomic(
          json,
          JSON.stringify({ exportedAt: new Date().toISOString(), rows }, null, 2) + "\n",
        );
      }
      console.error(
        `exported ${rows.length} rows (${rows.filter((r) => r.status === "failed").length} failed)`,
      );
    } else if (command === "retry") {
      const studies = args.flags.get("study");
      const ids = await retryFailed(queue, studies ? new Set(studies) : undefined);
      console.log(`moved ${ids.length} failed jobs back to the queue`);
    } else {
      throw new InputError(
        "BAD_COMMAND",
        `expected status, export or retry, found ${JSON.stringify(command)}\n${USAGE}`,
      );
    }
  } finally {
    await queue.close();
  }
}

if (import.meta.main) await main().catch(reportError);
