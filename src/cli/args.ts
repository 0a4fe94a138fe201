/**
 * A small flag parser for the CLI (Deno std is unreachable here, so no @std/cli): `--name value`,
 * `--name=value`, boolean `--flag`, repeated flags, and positional arguments.
 */
import { InputError } from "../core/errors.ts";

export interface ParsedArgs {
  flags: Map<string, string[]>;
  positional: string[];
}

export function parseArgs(argv: string[], booleans: string[] = []): ParsedArgs {
  const flags = new Map<string, string[]>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    let name = arg.slice(2);
    let value: string;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else if (booleans.includes(name)) {
      value = "true";
    } else {
      if (i + 1 >= argv.length || argv[i + 1].startsWith("--")) {
        throw new InputError("ARG_MISSING_VALUE", `--${name} expects a value, found none`);
      }
      value = argv[++i];
    }
    const list = flags.get(name) ?? [];
    list.push(value);
    flags.set(name, list);
  }
  return { flags, positional };
}

export function flag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return v ? v[v.length - 1] : undefined;
}

export function requireFlag(args: ParsedArgs, name: string, usage: string): string {
  const v = flag(args, name);
  if (v === undefined) throw new InputError("ARG_REQUIRED", `--${name} is required\n${usage}`);
  return v;
}

export function hasFlag(args: ParsedArgs, name: string): boolean {
  return args.flags.has(name) && flag(args, name) !== "false";
}

export function numberFlag(args: ParsedArgs, name: string, fallback: number): number {
  const v = flag(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) {
    throw new InputError("ARG_NOT_A_NUMBER", `--${name} expects a number, found ${JSON.stringify(v)}`);
  }
  return n;
}
