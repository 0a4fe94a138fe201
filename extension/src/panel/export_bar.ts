/** Download SEG / Parametric Map and Store to PACS, with the store status. */
import { EdgeSegError, InputError, ViewerError } from "../../../src/core/errors.ts";
import { h, useState } from "../host_react.ts";
import type { RunOutcome } from "../run.ts";
import type { ServicesManager } from "../host.ts";
import {
  downloadObject,
  type EncodedObject,
  encodeResult,
  type ExtensionManagerWithSources,
  storeObjects,
} from "../export.ts";
import { styles } from "./styles.ts";

export type ExportState = { state: "idle" | "working" | "stored" | "error"; text: string };

/** Download SEG / Parametric Map, Store to PACS. The objects are written once per result and reused. */
export function ExportBar(
  props: {
    outcome: RunOutcome;
    servicesManager: ServicesManager;
    extensionManager?: ExtensionManagerWithSources;
  },
): unknown {
  const [status, setStatus] = useState<ExportState>({ state: "idle", text: "" });
  // Written afresh on every export: the user may have edited the labelmap since the last one.
  const objects = (): Promise<EncodedObject[]> => encodeResult(props.outcome.exportSource);
  const notify = (type: "success" | "error", message: string) =>
    props.servicesManager.services.uiNotificationService?.show({ title: "EdgeSeg", message, type });
  const fail = (err: unknown) => {
    const text = err instanceof Error ? err.message : String(err);
    setStatus({ state: "error", text });
    notify("error", text);
  };
  const download = (kind: "SEG" | "PM") => {
    setStatus({ state: "working", text: "Writing…" });
    objects().then((objs) => {
      const obj = objs.find((o) => o.kind === kind);
      if (!obj) throw new InputError("NO_OBJECT", `no ${kind} for this result`);
      downloadObject(obj);
      setStatus({ state: "idle", text: `${obj.fileName} (${(obj.bytes.byteLength / 1024).toFixed(0)} KiB)` });
    }).catch(fail);
  };
  const store = () => {
    const studyUID = props.outcome.exportSource.displaySet.StudyInstanceUID ?? "";
    if (!props.extensionManager) return fail(new ViewerError("NO_DATA_SOURCE", "no data source to store to"));
    setStatus({ state: "working", text: "Storing to the PACS…" });
    objects()
      .then(async (objs) => {
        const auth = props.servicesManager.services.userAuthenticationService;
        // Marked before the store so the refetched display set is never offered as this run's reference.
        for (const o of objs) props.outcome.storedSeries.add(o.seriesInstanceUID);
        const outcome = await storeObjects(props.extensionManager!, studyUID, objs, {
          authorizationHeader: auth ? () => auth.getAuthorizationHeader() : undefined,
        });
        const text = `Stored ${objs.map((o) => o.kind).join(" and ")} to the PACS${
          outcome.refetchError
            ? ` (not yet in the study list: ${outcome.refetchError}; reload the study)`
            : ""
        }`;
        setStatus({ state: "stored", text });
        notify("success", text);
      })
      .catch((err) =>
        fail(
          new EdgeSegError(
            (err as { code?: string })?.code ?? "STORE_FAILED",
            `Store to PACS failed: ${
              err instanceof Error ? err.message : err
            }. The result stays here; retry or download it.`,
          ),
        )
      );
  };
  const busy = status.state === "working";
  const btn = (id: string, text: string, onClick: () => void) =>
    h("button", {
      id,
      type: "button",
      disabled: busy,
      style: busy
        ? { ...styles.button, ...styles.buttonSecondary, ...styles.buttonDisabled }
        : { ...styles.button, ...styles.buttonSecondary },
      onClick,
    }, text);
  return h(
    "div",
    { id: "edgeseg-export" },
    h(
      "div",
      { style: styles.row },
      btn("edgeseg-download-seg", "Download SEG", () => download("SEG")),
      props.outcome.result.uncertainty
        ? btn("edgeseg-download-pm", "Download uncertainty (PM)", () => download("PM"))
        : null,
      btn("edgeseg-store", "Store to PACS", store),
    ),
    status.text
      ? h(
        "div",
        {
          id: "edgeseg-export-status",
          "data-state": status.state,
          style: status.state === "error" ? styles.warn : styles.meta,
        },
        status.text,
      )
      : null,
  );
}
