/**
 * Build alias target for `react` (see extension/build.ts): any bundled dependency that imports React
 * gets the host viewer's instance, never a second copy. A default export is required here because it
 * stands in for the `react` package's own module shape.
 */
import { getReact } from "../host_react.ts";

const React = getReact() as unknown as Record<string, unknown>;
export default React;
export const createElement = React.createElement;
export const Fragment = React.Fragment;
export const useState = React.useState;
export const useEffect = React.useEffect;
export const useRef = React.useRef;
export const useMemo = React.useMemo;
export const useCallback = React.useCallback;
export const useContext = React.useContext;
export const useReducer = React.useReducer;
export const useLayoutEffect = React.useLayoutEffect;
export const createContext = React.createContext;
export const forwardRef = React.forwardRef;
export const memo = React.memo;
export const Children = React.Children;
export const cloneElement = React.cloneElement;
export const isValidElement = React.isValidElement;
export const version = React.version;
