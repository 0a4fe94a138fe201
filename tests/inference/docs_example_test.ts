/**
 * The bring-your-own-model example in docs/model-packages.md, run as written: the Python export,
 * the manifest, `check_package.ts --write-files`, then segment() on a small CT-like volume.
 * Needs Debian's PyTorch (/usr/bin/python3 with torch and onnx); skipped with a message otherwise.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;
const PY = "/usr/bin/python3";
const haveTorch = await new Deno.Command(PY, {
  args: ["-c", "import torch, onnx"],
  stdout: "null",
  stderr: "null",
})
  .output().then((r) => r.success, () => false);
if (!haveTorch) {
  console.log(
    `docs example test skipped: ${PY} with torch and onnx not found (Debian python3-torch, python3-onnx)`,
  );
}

function codeBlocks(markdown: string, lang: string): string[] {
  const out: string[] = [];
  const re = new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g");
  for (const m of markdown.matchAll(re)) out.push(m[1]);
  return out;
}

Deno.test({
  name: "the bring-your-own-model example in docs/model-packages.md exports, checks and segments as written",
  ignore: !haveTorch,
  fn: async () => {
    const doc = await Deno.readTextFile(join(ROOT, "docs", "model-packages.md"));
    const python = codeBlocks(doc, "python").find((b) => b.includes("torch.onnx.export"));
    const manifest = codeBlocks(doc, "json").find((b) => b.includes('"id": "my-ct-organs"'));
    assert.ok(python && manifest, "the doc has the export script and the manifest");
    const dir = await Deno.makeTempDir({ prefix: "edgeseg-byom-" });
    try {
      await Deno.mkdir(join(dir, "models", "my-ct-organs"), { recursive: true });
      await Deno.writeTextFile(join(dir, "export_my_model.py"), python);
      await Deno.writeTextFile(join(dir, "models", "my-ct-organs", "manifest.json"), manifest);
      const exp = await new Deno.Command(PY, {
        args: ["export_my_model.py"],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(exp.success, new TextDecoder().decode(exp.stderr).slice(-2000));
      const check = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          join(ROOT, "src", "cli", "check_package.ts"),
          "models/my-ct-organs",
          "--write-files",
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(check.stdout);
      assert.ok(check.success, out + new TextDecoder().decode(check.stderr));
      assert.match(out, /package models\/my-ct-organs is usable/);
      assert.match(out, /MC-dropout mask "mask" \[1,16,1,1\] accepted/);

      // segment() in its own process: this suite's process also drives Chromium through Playwright, and
      // onnxruntime-web's WASM threads were seen to deadlock in a process that had done so
      const script = join(dir, "run_segment.ts");
      const src = (p: string) => JSON.stringify(new URL(p, `file://${ROOT}/`).href);
      await Deno.writeTextFile(
        script,
        `import { loadModel } from ${src("src/inference/deno.ts")};
import { segment } from ${src("src/segmentation/segment.ts")};
import { makeTestVolume } from ${src("tests/inference/browser/volume.ts")};
const { runtime } = await loadModel("models/my-ct-organs", { numThreads: 1 });
const result = await segment(makeTestVolume([300, 280, 2]), runtime, { uncertainty: "mc", passes: 2, seed: 3 });
await runtime.release();
console.log(JSON.stringify({ dims: result.labelmap.geometry.dims, labels: result.statistics.map((s) => s.label),
  modelId: result.provenance.modelId, provider: result.provenance.provider, uncertainty: result.uncertainty?.data.length }));
`,
      );
      const seg = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--config", join(ROOT, "deno.json"), script],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(seg.success, new TextDecoder().decode(seg.stderr).slice(-2000));
      const r = JSON.parse(new TextDecoder().decode(seg.stdout).trim().split("\n").pop()!);
      assert.deepEqual(r.dims, [300, 280, 2]);
      assert.deepEqual(r.labels, ["Liver", "Spleen"]);
      assert.equal(r.modelId, "my-ct-organs");
      assert.equal(r.provider, "wasm");
      assert.equal(r.uncertainty, 300 * 280 * 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
