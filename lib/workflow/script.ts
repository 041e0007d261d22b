import variant from '@jitl/quickjs-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSContext, type QuickJSHandle, type QuickJSWASMModule } from 'quickjs-emscripten-core';

import { LlamaError, type LlamaErrorCode } from '../errors';

/**
 * `run:` nodes: JavaScript executed in QuickJS compiled to WebAssembly (quickjs-emscripten), never in the host's
 * own engine. A script sees only `state` (a copy, passed in as JSON) and the JavaScript language itself: no
 * `require`, no `process`, no file system, network, timers or host objects. Each script runs in a fresh runtime
 * with a time limit, a memory limit and a stack limit, and its result comes back as JSON.
 *
 * The memory limit is the WebAssembly memory itself: the interpreter runs in a linear memory created with a
 * fixed maximum (its 16 MiB initial heap + the limit), so an allocation past it fails inside QuickJS ("out of
 * memory") and can never grow the host's memory. QuickJS's own `setMemoryLimit` is not enough on its own: built
 * with Emscripten it cannot measure block sizes and counts 8 bytes per allocation (quickjs-emscripten issues
 * #255 and #271); it still bounds each single allocation.
 */

/** Default time limit of one `run:` script, in milliseconds. */
export const DEFAULT_SCRIPT_TIMEOUT_MS = 1000;
/** Default memory limit of one `run:` script, in bytes (32 MiB). */
export const DEFAULT_SCRIPT_MEMORY_BYTES = 32 * 1024 * 1024;
/** QuickJS's stack limit: deep enough for ~1500 nested calls, and below what the host's stack can hold. */
const SCRIPT_STACK_BYTES = 256 * 1024;
/** The initial linear memory the QuickJS build asks for (256 pages of 64 KiB). */
const WASM_INITIAL_PAGES = 256;
const WASM_PAGE = 65536;

export interface ScriptLimits {
  /** Time limit, in milliseconds. Default {@link DEFAULT_SCRIPT_TIMEOUT_MS} (1000). */
  timeoutMs?: number;
  /** Memory limit, in bytes. Default {@link DEFAULT_SCRIPT_MEMORY_BYTES} (32 MiB). */
  memoryBytes?: number;
}

/** Why a script failed: it does not compile, it threw, ran out of time or memory, or returned something else than a mapping. */
export type ScriptFailure = 'syntax' | 'threw' | 'timeout' | 'memory' | 'result';

/** The code of a failing script. */
const SCRIPT_ERROR_CODE: LlamaErrorCode = 'ERR_WORKFLOW_SCRIPT';

/** A `run:` script that failed; the message starts with the node's name. */
export class WorkflowScriptError extends LlamaError {
  readonly node: string;
  readonly reason: ScriptFailure;
  /** The line of the script the error points to (1 is the first line of the `run:` body), when known. */
  readonly line?: number;

  constructor(node: string, reason: ScriptFailure, message: string, line?: number) {
    super(SCRIPT_ERROR_CODE, `node "${node}" (run): ${message}${line !== undefined ? ` (line ${line} of the script)` : ''}`);
    this.name = 'WorkflowScriptError';
    this.node = node;
    this.reason = reason;
    if (line !== undefined) this.line = line;
  }
}

/** The WebAssembly global (the compiler's lib settings do not declare it). */
const Wasm = (globalThis as unknown as { WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => object } }).WebAssembly;

/** QuickJS modules by memory limit; each has its own linear memory of that maximum. */
const modules = new Map<number, Promise<QuickJSWASMModule>>();

/**
 * The QuickJS WebAssembly module whose memory cannot grow past its 16 MiB initial heap + `memoryBytes`. Loaded
 * on first use (about 20 ms) and shared by the scripts with that limit, one at a time.
 */
function quickJs(memoryBytes: number): Promise<QuickJSWASMModule> {
  let module = modules.get(memoryBytes);
  if (!module) {
    const wasmMemory = new Wasm.Memory({ initial: WASM_INITIAL_PAGES, maximum: WASM_INITIAL_PAGES + Math.ceil(memoryBytes / WASM_PAGE) });
    module = newQuickJSWASMModuleFromVariant(newVariant(variant, { wasmMemory: wasmMemory as never }));
    modules.set(memoryBytes, module);
  }
  return module;
}

/** The code around a script: `state` in, `{ state, returned }` out as JSON. The body is a function's body (`return` works). */
const PREFIX = '"use strict";\n(() => {\nlet state = JSON.parse(globalThis.__teaState);\ndelete globalThis.__teaState;\nconst __returned = (() => {\n';
const SUFFIX =
  '\n})();\nconst kind = __returned === undefined ? "nothing" : __returned === null ? "null" : Array.isArray(__returned) ? "a list" : typeof __returned;\n' +
  'return JSON.stringify({ state, kind, returned: kind === "object" ? __returned : null });\n})()';
const PREFIX_LINES = PREFIX.split('\n').length - 1;

/** The script's line in an error stack (`at <anonymous> (run:7:5)`), counted from the body's first line. */
function scriptLine(stack: unknown, code: string): number | undefined {
  if (typeof stack !== 'string') return undefined;
  const lines = code.split('\n').length;
  for (const m of stack.matchAll(/\brun:(\d+)/g)) {
    const line = Number(m[1]) - PREFIX_LINES;
    if (line >= 1 && line <= lines) return line;
  }
  return undefined;
}

interface DumpedError {
  name?: string;
  message?: string;
  stack?: string;
}

function dumpError(vm: QuickJSContext, handle: QuickJSHandle): DumpedError {
  const value = vm.dump(handle) as unknown;
  if (typeof value === 'object' && value !== null) return value as DumpedError;
  return { message: String(value) };
}

function formatMiB(bytes: number): string {
  return `${Number((bytes / 1048576).toFixed(1))} MiB`;
}

function describe(e: DumpedError): string {
  return [e.name, e.message].filter(Boolean).join(': ') || 'an unknown error';
}

function checkLimits(node: string, limits: ScriptLimits): Required<ScriptLimits> {
  const timeoutMs = limits.timeoutMs ?? DEFAULT_SCRIPT_TIMEOUT_MS;
  const memoryBytes = limits.memoryBytes ?? DEFAULT_SCRIPT_MEMORY_BYTES;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new LlamaError('ERR_INVALID_ARGUMENT', `scriptTimeoutMs must be a number above 0 (got ${timeoutMs}) for node "${node}"`);
  if (!Number.isInteger(memoryBytes) || memoryBytes < 1024 * 1024) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `scriptMemoryBytes must be an integer of at least 1 MiB (got ${memoryBytes}) for node "${node}"`);
  }
  return { timeoutMs, memoryBytes };
}

/**
 * Compiles a script without running it: its syntax errors, before anything runs.
 *
 * @throws WorkflowScriptError (reason 'syntax')
 */
export async function checkScript(node: string, code: string): Promise<void> {
  const module = await quickJs(DEFAULT_SCRIPT_MEMORY_BYTES);
  const vm = module.newContext();
  try {
    const result = vm.evalCode(PREFIX + code + SUFFIX, 'run', { compileOnly: true });
    if (result.error) {
      const e = dumpError(vm, result.error);
      result.error.dispose();
      throw new WorkflowScriptError(node, 'syntax', `the script does not compile: ${describe(e)}`, scriptLine(e.stack, code));
    }
    result.value.dispose();
  } finally {
    vm.dispose();
  }
}

/**
 * Runs a `run:` script on a copy of the state. The script reads and changes `state`; it may also `return` a
 * mapping, whose keys are then set in the state. Values go through JSON both ways (so `undefined` and functions
 * are dropped, and `NaN` becomes null).
 *
 * @returns the new state
 * @throws WorkflowScriptError naming the node: it threw, ran past `timeoutMs` (a loop without end), used more than
 *   `memoryBytes` or too deep a recursion, or returned something other than a mapping or nothing.
 */
export async function runScript(node: string, code: string, state: Record<string, unknown>, limits: ScriptLimits = {}): Promise<Record<string, unknown>> {
  const { timeoutMs, memoryBytes } = checkLimits(node, limits);
  const input = JSON.stringify(state);
  const module = await quickJs(memoryBytes);
  const runtime = module.newRuntime();
  runtime.setMemoryLimit(memoryBytes);
  runtime.setMaxStackSize(SCRIPT_STACK_BYTES);
  const deadline = Date.now() + timeoutMs;
  let timedOut = false;
  runtime.setInterruptHandler(() => {
    timedOut ||= Date.now() > deadline;
    return timedOut;
  });
  const vm = runtime.newContext();
  let output: string;
  try {
    const handle = vm.newString(input);
    vm.setProp(vm.global, '__teaState', handle);
    handle.dispose();
    let result;
    try {
      result = vm.evalCode(PREFIX + code + SUFFIX, 'run');
    } catch (error) {
      // The interpreter failed in the host (its stack ran out): this module's state cannot be trusted any more.
      modules.delete(memoryBytes);
      if (error instanceof RangeError) throw new WorkflowScriptError(node, 'memory', 'the script recursed too deeply');
      throw new WorkflowScriptError(node, 'threw', `the interpreter failed: ${(error as Error).message}`);
    }
    if (result.error) {
      const e = dumpError(vm, result.error);
      result.error.dispose();
      if (timedOut) throw new WorkflowScriptError(node, 'timeout', `the script ran longer than ${timeoutMs} ms (a loop without end?) and was stopped`, scriptLine(e.stack, code));
      if (/out of memory/i.test(e.message ?? '')) {
        // A fresh heap for the next script: nothing left fragmented by this one.
        modules.delete(memoryBytes);
        throw new WorkflowScriptError(node, 'memory', `the script used more than ${formatMiB(memoryBytes)} of memory and was stopped`, scriptLine(e.stack, code));
      }
      if (/stack overflow/i.test(e.message ?? '')) throw new WorkflowScriptError(node, 'memory', 'the script recursed too deeply (stack overflow)', scriptLine(e.stack, code));
      throw new WorkflowScriptError(node, 'threw', `the script threw ${describe(e)}`, scriptLine(e.stack, code));
    }
    output = vm.getString(result.value);
    result.value.dispose();
  } finally {
    vm.dispose();
    runtime.dispose();
  }
  const { state: after, kind, returned } = JSON.parse(output) as { state: unknown; kind: string; returned: Record<string, unknown> | null };
  if (kind !== 'nothing' && kind !== 'object') {
    throw new WorkflowScriptError(node, 'result', `the script returned ${kind}: return a mapping of state keys to set (or return nothing and change state)`);
  }
  if (typeof after !== 'object' || after === null || Array.isArray(after)) {
    throw new WorkflowScriptError(node, 'result', `the script set state to ${after === null ? 'null' : Array.isArray(after) ? 'a list' : typeof after}: state must stay a mapping`);
  }
  // Null prototype, as the state a run starts with: `__proto__` stays a key (JSON.parse made it an own property).
  return Object.assign(Object.create(null) as Record<string, unknown>, after, returned ?? {});
}
