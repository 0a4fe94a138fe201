/**
 * A series straight from a DICOMweb server into a Volume: WADO-RS retrieve of the series' Part 10
 * instances (as stored; compressed syntaxes are decoded by readSeries), then readSeries. Separate
 * from web.ts so the codec-free write.ts entry does not pull the readers in.
 */
import { readSeries, type ReadSeriesOptions, type SeriesRead } from "./read.ts";
import type { DicomWebClient } from "./web.ts";

export async function readSeriesFromDicomWeb(
  client: DicomWebClient,
  studyUID: string,
  seriesUID: string,
  options: Omit<ReadSeriesOptions, "seriesUID"> = {},
): Promise<SeriesRead> {
  const files = await client.retrieve(studyUID, seriesUID);
  return await readSeries(files, { ...options, seriesUID });
}
