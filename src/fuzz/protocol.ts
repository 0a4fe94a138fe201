/** Messages between the fuzz runner and its worker. */
export interface WorkerRequest {
  target: string;
  seed: number;
  from: number;
  to: number;
  allocLimitBytes: number;
}

export type FailureReason = "exception" | "hang" | "crash" | "alloc";

export type WorkerMessage =
  | { type: "ready"; note: string }
  | { type: "start"; index: number }
  | { type: "done"; index: number; kind: "ok"; ms: number }
  | { type: "done"; index: number; kind: "rejected"; code: string; ms: number }
  | { type: "done"; index: number; kind: "failure"; reason: FailureReason; message: string; ms: number }
  | { type: "finished" };
