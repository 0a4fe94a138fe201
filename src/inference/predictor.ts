/**
 * The `Predictor` the segmentation core calls, over one ORT session: tensors in and out, extra inputs
 * (the MC-dropout mask), output checks against the manifest, one call at a time per session.
 */
import { CancelledError, EdgeSegError, InputError, ManifestError } from "../core/errors.ts";
import type { AbortSignalLike, ModelManifest, Predictor } from "../core/types.ts";
import type { OrtTensorLike } from "./ort.ts";
import type { SessionHandle } from "./session.ts";

/**
 * The GPU device a session ran on went away mid-run (driver reset, another tab, `destroy()`).
 * A runtime allowed to use WASM re-creates its sessions there and redoes the window; otherwise the
 * run ends with this error.
 */
export class DeviceLostError extends EdgeSegError {
  constructor(message: string) {
    super("GPU_DEVICE_LOST", message);
  }
}

export interface PredictorStats {
  runs: number;
  windows: number;
  totalMs: number;
}

type ExtraInputs = Record<string, { data: Float32Array; shape: number[] }>;

function product(a: readonly number[]): number {
  return a.reduce((x, y) => x * y, 1);
}

/**
 * Wraps a session as the core's Predictor: input [B, C, ...spatial] → first output [B, K, ...spatial].
 * Feeds `extra` inputs by name (the MC-dropout mask; a batch-1 mask is repeated for every window of
 * the batch) and a mask of ones when the model has a mask input and none is given. Splits the batch
 * into single calls when the model's batch axis is fixed. Calls run one at a time on the session.
 */
export function createPredictor(
  handle: SessionHandle,
  manifest: ModelManifest,
  stats: PredictorStats = { runs: 0, windows: 0, totalMs: 0 },
  opts: { maxCallBatch?: number } = {},
): Predictor {
  const { ort, session } = handle;
  const inputName = manifest.inputs[0].name;
  const outputName = manifest.outputs[0].name;
  const outChannels = manifest.outputs[0].shape[1] as number;
  // maxCallBatch 1 turns batching off (see deno.ts: multi-threaded WASM in Deno hangs on batch > 1)
  const batchDynamic = typeof manifest.inputs[0].shape[0] === "string" && (opts.maxCallBatch ?? Infinity) > 1;
  const mc = manifest.uncertainty?.mcDropout;
  const known = new Set(manifest.inputs.map((t) => t.name));
  let queue: Promise<unknown> = Promise.resolve();

  const runOne = async (input: Float32Array, shape: number[], extra: ExtraInputs): Promise<Float32Array> => {
    const feeds: Record<string, OrtTensorLike> = { [inputName]: new ort.Tensor("float32", input, shape) };
    const batch = shape[0];
    for (const [name, t] of Object.entries(extra)) {
      let data = t.data, tshape = t.shape;
      if (tshape[0] === 1 && batch > 1) {
        data = new Float32Array(t.data.length * batch);
        for (let b = 0; b < batch; b++) data.set(t.data, b * t.data.length);
        tshape = [batch, ...tshape.slice(1)];
      }
      feeds[name] = new ort.Tensor("float32", data, tshape);
    }
    if (mc && !(mc.input in extra)) {
      const s = [batch, ...mc.shape.slice(1)];
      feeds[mc.input] = new ort.Tensor("float32", new Float32Array(product(s)).fill(1), s);
    }
    const t0 = performance.now();
    // A lost device may leave run() pending for ever; the loss itself ends the call.
    const out = handle.deviceLost
      ? await Promise.race([
        session.run(feeds),
        handle.deviceLost.then((why): never => {
          throw new DeviceLostError(`the WebGPU device was lost (${why})`);
        }),
      ])
      : await session.run(feeds);
    stats.totalMs += performance.now() - t0;
    stats.runs++;
    stats.windows += batch;
    const y = out[outputName];
    for (const [k, t] of Object.entries(out)) if (k !== outputName) t.dispose?.();
    if (!y || !(y.data instanceof Float32Array)) {
      throw new ManifestError("OUTPUT_TYPE", `model output "${outputName}" is missing or not float32`, {
        expected: "a float32 tensor",
        actual: y ? y.type : `outputs ${Object.keys(out).join(", ")}`,
      });
    }
    const want = [batch, outChannels, ...shape.slice(2)];
    if (y.dims.length !== want.length || y.dims.some((d, i) => d !== want[i])) {
      throw new ManifestError("OUTPUT_SHAPE", `model output "${outputName}" has an unexpected shape`, {
        expected: `[${want.join(", ")}]`,
        actual: `[${y.dims.join(", ")}]`,
      });
    }
    return y.data;
  };

  const predict = async (
    input: Float32Array,
    shape: number[],
    signal?: AbortSignalLike,
    extra: ExtraInputs = {},
  ): Promise<Float32Array> => {
    if (product(shape) !== input.length) {
      throw new InputError(
        "TENSOR_SIZE",
        `input tensor has ${input.length} values but shape [${shape.join(", ")}] needs ${product(shape)}`,
      );
    }
    for (const name of Object.keys(extra)) {
      if (!known.has(name) || name === inputName) {
        throw new InputError(
          "UNKNOWN_INPUT",
          `extra input "${name}" is not an extra input of model ${manifest.id} ` +
            `(expected one of ${[...known].filter((k) => k !== inputName).join(", ") || "none"})`,
        );
      }
    }
    if (signal?.aborted) throw new CancelledError("inference cancelled");
    const batch = shape[0];
    if (batchDynamic || batch === 1) return await runOne(input, shape, extra);
    // fixed batch axis: one call per window
    const per = input.length / batch;
    const one = [1, ...shape.slice(1)];
    let out: Float32Array | undefined;
    for (let b = 0; b < batch; b++) {
      if (signal?.aborted) throw new CancelledError("inference cancelled");
      const ex: ExtraInputs = {};
      for (const [k, t] of Object.entries(extra)) {
        const n = t.shape[0] === 1 ? t.data.length : t.data.length / batch;
        ex[k] = {
          data: t.shape[0] === 1 ? t.data : t.data.subarray(b * n, (b + 1) * n),
          shape: [1, ...t.shape.slice(1)],
        };
      }
      const y = await runOne(input.subarray(b * per, (b + 1) * per), one, ex);
      out ??= new Float32Array(y.length * batch);
      out.set(y, b * y.length);
    }
    return out!;
  };

  // one session, one call at a time: concurrent run() on a WASM session is not safe
  return (input, shape, signal, extra) => {
    const p = queue.then(() => predict(input, shape, signal, extra));
    queue = p.catch(() => {});
    return p;
  };
}
