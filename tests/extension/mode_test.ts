import assert from "node:assert/strict";
import { deriveMode, edgesegMode, MODE_ID, rightPanelsFor, toolbarButton } from "../../extension/src/mode.ts";
import { PANEL_ID, TOOLBAR_BUTTON_ID } from "../../extension/src/host.ts";
import type { ExtensionApi, ToolbarButton } from "../../extension/src/host.ts";

const BASIC_SEG_PANEL = "@ohif/extension-cornerstone.panelModule.panelSegmentation";

function fakeBasic() {
  const entered: string[] = [];
  return {
    entered,
    instance: {
      id: "@ohif/mode-basic",
      routeName: "basic",
      hide: false,
      displayName: "Non-Longitudinal Basic",
      extensions: { "@ohif/extension-default": "^3.0.0", "@ohif/extension-cornerstone-dicom-seg": "^3.0.0" },
      routes: [{
        path: "basic",
        layoutTemplate() {
          return this;
        },
        layoutInstance: {
          id: "@ohif/extension-default.layoutTemplateModule.viewerLayout",
          props: {
            leftPanels: ["thumbs"],
            rightPanels: [BASIC_SEG_PANEL, "measurements"],
            rightPanelClosed: true,
          },
        },
      }],
      onModeEnter(this: { id: string }) {
        entered.push(this.id);
      },
    },
  };
}

Deno.test("the EdgeSeg panel comes first on the right, then the basic mode's segmentation panel", () => {
  assert.deepEqual(rightPanelsFor([BASIC_SEG_PANEL, "measurements"]), [PANEL_ID, BASIC_SEG_PANEL]);
  assert.deepEqual(rightPanelsFor(undefined), [PANEL_ID, BASIC_SEG_PANEL]);
});

Deno.test("the derived mode keeps the basic route but has its own id, route, modalities and open right panel", () => {
  const { instance } = fakeBasic();
  const mode = deriveMode(instance);
  assert.equal(mode.id, MODE_ID);
  assert.equal(mode.routeName, "edgeseg");
  assert.equal(mode.displayName, "EdgeSeg");
  assert.equal(mode.routes[0].path, "edgeseg");
  assert.equal(mode.routes[0].layoutTemplate, instance.routes[0].layoutTemplate);
  assert.deepEqual(mode.routes[0].layoutInstance.props.rightPanels, [PANEL_ID, BASIC_SEG_PANEL]);
  assert.equal(mode.routes[0].layoutInstance.props.rightPanelClosed, false);
  assert.deepEqual(mode.routes[0].layoutInstance.props.leftPanels, ["thumbs"]);
  for (const m of ["CT", "MR", "OP"]) assert.ok((mode.modeModalities as string[]).includes(m), m);
  // only built-in extension ids: a custom key would be passed to import() by OHIF
  assert.deepEqual(Object.keys(mode.extensions as object), Object.keys(instance.extensions));
  // the basic instance itself is untouched
  assert.deepEqual(instance.routes[0].layoutInstance.props.rightPanels, [BASIC_SEG_PANEL, "measurements"]);
});

Deno.test("the derived mode keeps the basic mode's SOP class handlers and viewports, so a stored PM opens", () => {
  const pmapHandler = "@ohif/extension-cornerstone-dicom-pmap.sopClassHandlerModule.dicom-pmap";
  const pmapViewport = "@ohif/extension-cornerstone-dicom-pmap.viewportModule.dicom-pmap";
  const { instance } = fakeBasic();
  const basic = {
    ...instance,
    sopClassHandlers: ["@ohif/extension-cornerstone-dicom-seg.sopClassHandlerModule.dicom-seg", pmapHandler],
    extensions: { ...instance.extensions, "@ohif/extension-cornerstone-dicom-pmap": "^3.0.0" },
    routes: [{
      ...instance.routes[0],
      layoutInstance: {
        ...instance.routes[0].layoutInstance,
        props: {
          ...instance.routes[0].layoutInstance.props,
          viewports: [{ namespace: pmapViewport, displaySetsToDisplay: [pmapHandler] }],
        },
      },
    }],
  };
  const mode = deriveMode(basic);
  assert.deepEqual(mode.sopClassHandlers, basic.sopClassHandlers);
  assert.ok(Object.keys(mode.extensions as object).includes("@ohif/extension-cornerstone-dicom-pmap"));
  assert.deepEqual(mode.routes[0].layoutInstance.props.viewports, [
    { namespace: pmapViewport, displaySetsToDisplay: [pmapHandler] },
  ]);
});

Deno.test("entering the mode runs the basic mode's setup and then adds the EdgeSeg toolbar button", () => {
  const { instance, entered } = fakeBasic();
  const mode = deriveMode(instance);
  const registered: ToolbarButton[] = [];
  const sections: [string, string[]][] = [];
  const api = {
    servicesManager: {
      services: {
        toolbarService: {
          register: (b: ToolbarButton[]) => registered.push(...b),
          updateSection: (k: string, ids: string[]) => sections.push([k, ids]),
        },
      },
    },
  } as unknown as ExtensionApi & Record<string, unknown>;
  mode.onModeEnter?.call(mode, api);
  assert.deepEqual(entered, [MODE_ID], "basic onModeEnter ran with the EdgeSeg mode as this");
  assert.deepEqual(registered, [toolbarButton]);
  assert.deepEqual(sections, [["primary", [TOOLBAR_BUTTON_ID]]]);
  assert.equal(toolbarButton.props.commands, "edgesegRun");
});

Deno.test("the mode factory rejects a basic mode of an unexpected shape with a message naming it", async () => {
  await assert.rejects(
    edgesegMode.modeFactory({ loadModules: () => Promise.resolve([{ nope: true }]) }),
    /unexpected shape/,
  );
  const { instance } = fakeBasic();
  const mode = await edgesegMode.modeFactory({
    loadModules: () => Promise.resolve([{ modeInstance: instance }]),
  });
  assert.equal(mode.id, MODE_ID);
});
