/** Build alias target for `react/jsx-runtime` and `react/jsx-dev-runtime`: the host viewer's JSX runtime. */
import { getJsxRuntime } from "../host_react.ts";

const runtime = getJsxRuntime();
export const jsx = runtime.jsx;
export const jsxs = runtime.jsxs;
export const jsxDEV = runtime.jsx;
export const Fragment = runtime.Fragment;
