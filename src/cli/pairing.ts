/**
 * Pairs evaluation inputs with their references, the way the common data sets name them:
 * DRIVE `21_training.tif` ↔ `21_manual1.gif` ↔ `21_training_mask.gif` (leading case number),
 * NIfTI `<case>_image.nii.gz` ↔ `<case>_label.nii.gz` (case stem), or identical stems.
 */

const EXTENSIONS = /\.(nii\.gz|nii|png|jpe?g|gif|tiff?|dcm|json)$/i;
const ROLE_SUFFIXES = /[_-](image|img|label|labels|seg|mask|manual\d*|training|test|gt|ref|reference|fov)$/i;

/** The case key of a file name: a leading number if there is one, else the stem without role suffixes. */
export function caseKey(fileName: string): string {
  const base = fileName.split("/").pop()!.replace(EXTENSIONS, "");
  const lead = base.match(/^(\d+)(?:[_-]|$)/);
  if (lead) return String(Number(lead[1]));
  let stem = base;
  for (let i = 0; i < 3 && ROLE_SUFFIXES.test(stem); i++) stem = stem.replace(ROLE_SUFFIXES, "");
  return stem;
}

export interface CasePair {
  key: string;
  input: string;
  reference?: string;
  secondReference?: string;
  fov?: string;
}

/**
 * Pairs inputs with references (and optional second references and field-of-view masks) by case key.
 * Inputs without a reference are kept with `reference` undefined so the caller can report them.
 */
export function pairCases(
  inputs: string[],
  references: string[],
  extra: { secondReferences?: string[]; fovs?: string[] } = {},
): CasePair[] {
  const index = (files: string[] | undefined) => {
    const map = new Map<string, string>();
    for (const f of files ?? []) map.set(caseKey(f), f);
    return map;
  };
  const refs = index(references), second = index(extra.secondReferences), fov = index(extra.fovs);
  return inputs
    .map((input) => {
      const key = caseKey(input);
      return { key, input, reference: refs.get(key), secondReference: second.get(key), fov: fov.get(key) };
    })
    .sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true }));
}
