/** The inference Worker as the extension builds it: protocol.ts served by serveWorker, running segment(). */
import { serveWorker } from "../../../src/inference/browser.ts";
import { segment } from "../../../src/segmentation/segment.ts";

serveWorker(self as unknown as Parameters<typeof serveWorker>[0], segment);
