/**
 * NIfTI-1 reader and writer (single file, .nii or .nii.gz) for the CLI and evaluation.
 *
 * NIfTI stores world coordinates in RAS; EdgeSeg's Geometry is DICOM LPS, so the first two rows of
 * the affine change sign on the way in and out. The voxel order (i fastest) is the same as Volume's.
 * Declared sizes are checked against the real byte count before any voxel array is allocated.
 */
import { InputError } from "../core/errors.ts";
import type { Geometry, Mat3, Vec3, Volume } from "../core/types.ts";

const HEADER_BYTES = 348;

/** NIfTI datatype codes we read and the typed arrays they map to. */
const DATATYPES: Record<number, { bytes: number; name: string }> = {
  2: { bytes: 1, name: "uint8" },
  4: { bytes: 2, name: "int16" },
  8: { bytes: 4, name: "int32" },
  16: { bytes: 4, name: "float32" },
  64: { bytes: 8, name: "float64" },
  256: { bytes: 1, name: "int8" },
  512: { bytes: 2, name: "uint16" },
  768: { bytes: 4, name: "uint32" },
};

export interface NiftiImage {
  volume: Volume;
  /** the raw datatype name before scaling */
  datatype: string;
  /** true when scl_slope/scl_inter were applied */
  scaled: boolean;
  /** the scl_slope/scl_inter that were applied (value = stored × slope + intercept), when scaled */
  scaling?: { slope: number; intercept: number };
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length > 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Decodes a NIfTI-1 file (gzipped or not) into a Volume with LPS geometry. */
export async function readNifti(input: Uint8Array, modality = "MR"): Promise<NiftiImage> {
  let bytes = input;
  if (isGzip(input)) {
    try {
      bytes = await gunzip(input);
    } catch (e) {
      throw new InputError(
        "NIFTI_GZIP",
        `expected a valid gzip stream (.nii.gz), found one that cannot be decompressed: ${
          e instanceof Error ? e.message : String(e)
        }`,
      );
    }
  }
  if (bytes.length < HEADER_BYTES) {
    throw new InputError(
      "NIFTI_TRUNCATED",
      `NIfTI file too short: expected at least ${HEADER_BYTES} bytes, found ${bytes.length}`,
    );
  }
  let view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let little = true;
  if (view.getInt32(0, true) !== HEADER_BYTES) {
    if (view.getInt32(0, false) === HEADER_BYTES) little = false;
    else {
      throw new InputError(
        "NIFTI_BAD_HEADER",
        `not a NIfTI-1 file: sizeof_hdr expected 348, found ${view.getInt32(0, true)}`,
      );
    }
  }
  const magic = String.fromCharCode(bytes[344], bytes[345], bytes[346]);
  if (magic !== "n+1" && magic !== "ni1") {
    throw new InputError("NIFTI_BAD_MAGIC", `NIfTI magic expected "n+1", found ${JSON.stringify(magic)}`);
  }
  if (magic === "ni1") {
    throw new InputError(
      "NIFTI_PAIR",
      "NIfTI .hdr/.img pairs are not supported; convert to a single .nii(.gz)",
    );
  }
  const ndim = view.getInt16(40, little);
  if (ndim < 2 || ndim > 4) throw new InputError("NIFTI_DIMS", `NIfTI dim[0] expected 2..4, found ${ndim}`);
  const dims: Vec3 = [
    view.getInt16(42, little),
    view.getInt16(44, little),
    ndim >= 3 ? view.getInt16(46, little) : 1,
  ];
  const frames = ndim === 4 ? view.getInt16(48, little) : 1;
  if (frames !== 1) {
    throw new InputError(
      "NIFTI_4D",
      `only single-frame NIfTI is supported: dim[4] expected 1, found ${frames}`,
    );
  }
  if (dims.some((d) => d < 1)) {
    throw new InputError("NIFTI_DIMS", `NIfTI dimensions must be ≥ 1, found ${dims.join("×")}`);
  }
  const datatype = view.getInt16(70, little);
  const type = DATATYPES[datatype];
  if (!type) {
    throw new InputError(
      "NIFTI_DATATYPE",
      `unsupported NIfTI datatype ${datatype} (supported: ${
        Object.values(DATATYPES).map((t) => t.name).join(", ")
      })`,
    );
  }
  const rawOffset = view.getFloat32(108, little);
  if (!Number.isFinite(rawOffset) || rawOffset > bytes.length) {
    throw new InputError(
      "NIFTI_VOX_OFFSET",
      `NIfTI vox_offset must be a finite byte offset within the file (${bytes.length} bytes), found ${rawOffset}`,
    );
  }
  const voxOffset = Math.max(HEADER_BYTES, Math.round(rawOffset));
  const count = dims[0] * dims[1] * dims[2];
  const needed = voxOffset + count * type.bytes;
  if (bytes.length < needed) {
    throw new InputError(
      "NIFTI_TRUNCATED",
      `NIfTI data truncated: header declares ${count} voxels (${needed} bytes), file has ${bytes.length}`,
    );
  }
  const pixdim: Vec3 = [
    view.getFloat32(80, little),
    view.getFloat32(84, little),
    view.getFloat32(88, little),
  ];
  const slope = view.getFloat32(112, little);
  const inter = view.getFloat32(116, little);
  const scaled = Number.isFinite(slope) && slope !== 0 && !(slope === 1 && inter === 0);

  const data = new Float32Array(count);
  view = new DataView(bytes.buffer, bytes.byteOffset + voxOffset, count * type.bytes);
  for (let n = 0; n < count; n++) {
    let v: number;
    switch (datatype) {
      case 2:
        v = view.getUint8(n);
        break;
      case 4:
        v = view.getInt16(2 * n, little);
        break;
      case 8:
        v = view.getInt32(4 * n, little);
        break;
      case 16:
        v = view.getFloat32(4 * n, little);
        break;
      case 64:
        v = view.getFloat64(8 * n, little);
        break;
      case 256:
        v = view.getInt8(n);
        break;
      case 512:
        v = view.getUint16(2 * n, little);
        break;
      default:
        v = view.getUint32(4 * n, little);
    }
    data[n] = scaled ? v * slope + inter : v;
  }

  const geometry = geometryFromHeader(
    new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES),
    little,
    dims,
    pixdim,
  );
  return {
    volume: { geometry, channels: 1, data, modality },
    datatype: type.name,
    scaled,
    ...(scaled ? { scaling: { slope, intercept: inter } } : {}),
  };
}

/** Builds an LPS Geometry from sform (preferred) or qform, falling back to pixdim on identity axes. */
function geometryFromHeader(view: DataView, little: boolean, dims: Vec3, pixdim: Vec3): Geometry {
  const sformCode = view.getInt16(254, little);
  const qformCode = view.getInt16(252, little);
  let affine: number[] | null = null; // 3×4 row-major, RAS
  if (sformCode > 0) {
    affine = [];
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 4; c++) affine.push(view.getFloat32(280 + 16 * r + 4 * c, little));
    }
  } else if (qformCode > 0) {
    const b = view.getFloat32(256, little),
      c = view.getFloat32(260, little),
      d = view.getFloat32(264, little);
    const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
    const qfac = view.getFloat32(76, little) < 0 ? -1 : 1;
    const R = [
      a * a + b * b - c * c - d * d,
      2 * (b * c - a * d),
      2 * (b * d + a * c),
      2 * (b * c + a * d),
      a * a + c * c - b * b - d * d,
      2 * (c * d - a * b),
      2 * (b * d - a * c),
      2 * (c * d + a * b),
      a * a + d * d - c * c - b * b,
    ];
    const sx = Math.abs(pixdim[0]) || 1,
      sy = Math.abs(pixdim[1]) || 1,
      sz = (Math.abs(pixdim[2]) || 1) * qfac;
    const off = [view.getFloat32(268, little), view.getFloat32(272, little), view.getFloat32(276, little)];
    affine = [
      R[0] * sx,
      R[1] * sy,
      R[2] * sz,
      off[0],
      R[3] * sx,
      R[4] * sy,
      R[5] * sz,
      off[1],
      R[6] * sx,
      R[7] * sy,
      R[8] * sz,
      off[2],
    ];
  }
  if (!affine) {
    const s = pixdim.map((p) => Math.abs(p) || 1) as Vec3;
    affine = [s[0], 0, 0, 0, 0, s[1], 0, 0, 0, 0, s[2], 0];
  }
  // RAS → LPS: negate x and y rows.
  for (let c = 0; c < 4; c++) {
    affine[c] = 0 - affine[c];
    affine[4 + c] = 0 - affine[4 + c];
  }
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine![c], affine![4 + c], affine![8 + c])) as Vec3;
  if (spacing.some((s) => !(s > 0))) {
    throw new InputError(
      "NIFTI_SPACING",
      `NIfTI affine has a zero-length axis: spacing ${spacing.join(", ")}`,
    );
  }
  const direction = [
    affine[0] / spacing[0],
    affine[1] / spacing[1],
    affine[2] / spacing[2],
    affine[4] / spacing[0],
    affine[5] / spacing[1],
    affine[6] / spacing[2],
    affine[8] / spacing[0],
    affine[9] / spacing[1],
    affine[10] / spacing[2],
  ] as Mat3;
  return { dims, spacing, origin: [affine[3], affine[7], affine[11]], direction };
}

export type NiftiData = Uint8Array | Int16Array | Uint16Array | Float32Array;

/**
 * Encodes a 1-channel grid as NIfTI-1 (sform and qform code 1 = scanner, RAS), gzipped when `gzipped`.
 */
export async function writeNifti(geometry: Geometry, data: NiftiData, gzipped = true): Promise<Uint8Array> {
  const count = geometry.dims[0] * geometry.dims[1] * geometry.dims[2];
  if (data.length !== count) {
    throw new InputError(
      "NIFTI_SIZE",
      `voxel count expected ${count} for ${geometry.dims.join("×")}, found ${data.length}`,
    );
  }
  const [datatype, bitpix] = data instanceof Uint8Array
    ? [2, 8]
    : data instanceof Int16Array
    ? [4, 16]
    : data instanceof Uint16Array
    ? [512, 16]
    : [16, 32];
  const voxOffset = 352;
  const out = new Uint8Array(voxOffset + data.byteLength);
  const v = new DataView(out.buffer);
  v.setInt32(0, HEADER_BYTES, true);
  v.setInt16(40, 3, true);
  v.setInt16(42, geometry.dims[0], true);
  v.setInt16(44, geometry.dims[1], true);
  v.setInt16(46, geometry.dims[2], true);
  for (let i = 4; i <= 7; i++) v.setInt16(40 + 2 * i, 1, true);
  v.setInt16(70, datatype, true);
  v.setInt16(72, bitpix, true);
  v.setFloat32(76, 1, true); // qfac
  v.setFloat32(80, geometry.spacing[0], true);
  v.setFloat32(84, geometry.spacing[1], true);
  v.setFloat32(88, geometry.spacing[2], true);
  v.setFloat32(108, voxOffset, true);
  v.setFloat32(112, 1, true);
  v.setFloat32(116, 0, true);
  out[123] = 10; // xyzt_units: mm + s
  v.setInt16(252, 0, true); // qform unused
  v.setInt16(254, 1, true); // sform = scanner
  const d = geometry.direction, s = geometry.spacing, o = geometry.origin;
  const sign = [-1, -1, 1]; // LPS → RAS
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) v.setFloat32(280 + 16 * r + 4 * c, sign[r] * d[3 * r + c] * s[c], true);
    v.setFloat32(280 + 16 * r + 12, sign[r] * o[r], true);
  }
  out.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1\0"
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), voxOffset);
  return gzipped ? await gzip(out) : out;
}
