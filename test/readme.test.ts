import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ensureCliBuilt } from './support/cli';
import { startHfMirror } from './support/hf-mirror';
import type { HttpFixture } from './support/http-fixture';
import { haveModel, modelsDir, repoRoot, STORIES } from './support/models';

// Every JavaScript and shell block of README.md, run as written, in the README's order, the way a reader follows
// it: one project folder and one HOME for the whole README, the shared test models in that folder (by name, and
// as models/), tea-llama installed in its node_modules, and a stand-in for huggingface.co (HF_ENDPOINT) so that
// `tea-llama pull hf:…` downloads the shared model. Nothing here knows what the blocks say:
// - ```js blocks run as ES modules with node (a fragment without an import gets tea-llama's exports);
// - ```sh blocks run with bash -e; ```console blocks run each `$ command` and compare its stdout with the lines
//   the README shows under it, where `…` stands for any text (a line of only `…`: any number of lines);
// - a ```yaml block whose first line names a file (`# settings.yaml: …`) is written to that file;
// - a block whose first line says `needs Node ≥ N` or `needs CMD` is skipped where Node is older or CMD is not on
//   PATH: that rule, not a list of blocks;
// - `npm install` and `npm test` (no package named) are the clone's own install and test: .ci/run runs exactly
//   those, so here they are checked against .ci/run instead of run again from inside the test run.

interface Block {
  lang: string;
  body: string;
  /** 1-based line of the opening fence. */
  line: number;
  section: string;
}

const README = join(repoRoot, 'README.md');
const RUNNABLE = new Set(['js', 'javascript', 'mjs', 'sh', 'bash', 'shell', 'console']);

function blocksOf(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#{1,6} (.*)$/.exec(lines[i]);
    if (heading) section = heading[1];
    const open = /^```(\S*)/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    blocks.push({ lang: open[1].toLowerCase(), body: body.join('\n'), line: start + 1, section });
  }
  return blocks;
}

/** What a block's first line says it needs (`# needs Node ≥ 24`, `// needs nvcc (…): …`), and what is missing here. */
function missingNeeds(block: Block, path: string): string[] {
  const first = block.body.split('\n').find((l) => l.trim() !== '') ?? '';
  const m = /^\s*(?:#|\/\/)\s*needs\s+(.+)$/i.exec(first);
  if (!m) return [];
  const missing: string[] = [];
  for (const raw of m[1].split(':')[0].split(/,|\band\b/)) {
    const item = raw.replace(/\([^)]*\)/g, '').trim();
    if (!item) continue;
    const node = /^node(?:\.js)?\s*(?:≥|>=)\s*(\d+)$/i.exec(item);
    if (node) {
      if (Number(process.versions.node.split('.')[0]) < Number(node[1])) missing.push(`Node ≥ ${node[1]}`);
      continue;
    }
    const command = item.split(/\s+/)[0];
    const found = path.split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
    if (!found) missing.push(command);
  }
  return missing;
}

/** The clone's own install and test commands (no package named), which .ci/run runs. */
const LIFECYCLE = /^npm (install|ci|test)((\s+-\S+)*)\s*(#.*)?$/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command in its own process group; when it ends, whatever it left in the background is stopped. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 240_000): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const stopGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
    };
    const timer = setTimeout(stopGroup, timeoutMs);
    // 'exit', not 'close': a server started with & keeps the pipes open until the group is stopped.
    child.on('exit', (code) => {
      clearTimeout(timer);
      stopGroup();
      setTimeout(() => done({ code, stdout, stderr }), 50);
    });
  });
}

/** `…` is any text within a line; a line of only `…` is any number of lines. */
function matches(expected: string[], actual: string[]): boolean {
  const line = (pattern: string, text: string) =>
    new RegExp(`^${pattern.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(text);
  const go = (e: number, a: number): boolean => {
    if (e === expected.length) return a === actual.length;
    if (expected[e] === '…') {
      for (let k = a; k <= actual.length; k++) if (go(e + 1, k)) return true;
      return false;
    }
    return a < actual.length && line(expected[e], actual[a]) && go(e + 1, a + 1);
  };
  return go(0, 0);
}

const lines = (text: string) => text.replace(/\n$/, '').split('\n').map((l) => l.trimEnd());

const blocks = blocksOf(readFileSync(README, 'utf8'));

// bash, symlinks and process groups: POSIX only.
describe.runIf(process.platform !== 'win32' && haveModel(STORIES))('README.md, every JavaScript and shell block as written', () => {
  const work = mkdtempSync(join(tmpdir(), 'tea-readme-'));
  const home = join(work, 'home');
  let env: NodeJS.ProcessEnv;
  let mirror: HttpFixture;
  let exportNames: string[];

  beforeAll(async () => {
    ensureCliBuilt();
    mirror = await startHfMirror();
    // The reader's project: tea-llama and its dependencies installed, the shared models at hand.
    const modules = join(work, 'node_modules');
    mkdirSync(join(modules, '.bin'), { recursive: true });
    symlinkSync(repoRoot, join(modules, 'tea-llama'), 'dir');
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    // Also the packages the blocks import beside tea-llama (`openai`, `ai`: what a reader installs to follow them).
    const imported = blocks
      .filter((b) => ['js', 'javascript', 'mjs'].includes(b.lang))
      .flatMap((b) => [...b.body.matchAll(/\bfrom '((?:@[^/']+\/)?[^/'.][^/']*)/g)].map((m) => m[1]))
      .filter((name) => name !== 'tea-llama' && !name.startsWith('node:') && !(name in pkg.dependencies));
    for (const dep of new Set([...Object.keys(pkg.dependencies), ...imported])) {
      if (!existsSync(join(repoRoot, 'node_modules', dep))) continue;
      mkdirSync(join(modules, dep, '..'), { recursive: true });
      symlinkSync(join(repoRoot, 'node_modules', dep), join(modules, dep), 'dir');
    }
    symlinkSync(join(repoRoot, 'bin', 'tea-llama.js'), join(modules, '.bin', 'tea-llama'));
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'readme-reader', version: '1.0.0', private: true }));
    symlinkSync(join(repoRoot, 'examples'), join(work, 'examples'), 'dir');
    symlinkSync(modelsDir, join(work, 'models'), 'dir');
    for (const name of readdirSync(modelsDir).filter((n) => n.endsWith('.gguf'))) symlinkSync(join(modelsDir, name), join(work, name));
    mkdirSync(home);
    symlinkSync(modelsDir, join(home, 'models'), 'dir');
    env = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(LLM_|TEA_|HF_)/.test(k)) env[k] = v;
    Object.assign(env, {
      HOME: home,
      HF_ENDPOINT: mirror.url,
      PATH: [join(modules, '.bin'), join(repoRoot, 'build', 'tools'), process.env.PATH].join(delimiter),
    });
    exportNames = Object.keys(createRequire(README)(join(repoRoot, 'dist', 'cjs', 'index.js'))).filter((n) => n !== '__esModule');
  }, 600_000);
  afterAll(async () => {
    await mirror?.close();
  });

  it('has runnable blocks, and .ci/run runs the install and test commands the README gives', () => {
    expect(blocks.filter((b) => RUNNABLE.has(b.lang)).length).toBeGreaterThan(5);
    const ci = readFileSync(join(repoRoot, '.ci', 'run'), 'utf8');
    const lifecycle = blocks
      .filter((b) => RUNNABLE.has(b.lang))
      .flatMap((b) => b.body.split('\n').map((l) => l.replace(/^\$ /, '').trim()))
      .map((l) => LIFECYCLE.exec(l)?.[1])
      .filter((c): c is string => c !== undefined);
    expect(lifecycle).toContain('install');
    for (const command of new Set(lifecycle)) expect(ci, `.ci/run runs npm ${command}`).toMatch(new RegExp(`^npm ${command}\\b`, 'm'));
  });

  for (const block of blocks) {
    const title = `line ${block.line} (${block.section}): ${block.lang}`;
    if (block.lang === 'yaml' || block.lang === 'yml') {
      const file = /^#\s*([\w./-]+\.ya?ml)\b/.exec(block.body)?.[1];
      if (file) {
        it(`${title}: written to ${file}`, () => {
          writeFileSync(join(work, file), block.body + '\n');
        });
      }
      continue;
    }
    if (!RUNNABLE.has(block.lang)) continue;

    it(title, async (ctx) => {
      const missing = missingNeeds(block, env.PATH!);
      if (missing.length > 0) ctx.skip(`needs ${missing.join(', ')}`);
      const failure = (r: Run, what: string) => `${what}\nexit code ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

      if (block.lang === 'console') {
        const steps: Array<{ command: string; expected: string[] }> = [];
        for (const l of block.body.split('\n')) {
          if (l.startsWith('$ ')) steps.push({ command: l.slice(2), expected: [] });
          else steps.at(-1)?.expected.push(l.trimEnd());
        }
        for (const step of steps) {
          if (LIFECYCLE.test(step.command.trim())) continue;
          const r = await run('bash', ['-o', 'pipefail', '-c', step.command], work, env);
          expect(r.code, failure(r, `$ ${step.command}`)).toBe(0);
          if (step.expected.length > 0) {
            expect(matches(step.expected, lines(r.stdout)), failure(r, `$ ${step.command}\n--- expected\n${step.expected.join('\n')}`)).toBe(true);
          }
        }
        return;
      }

      if (block.lang === 'js' || block.lang === 'javascript' || block.lang === 'mjs') {
        const imports = /^\s*import\s|require\(/m.test(block.body);
        const prelude = imports ? '' : `import { ${exportNames.join(', ')} } from 'tea-llama';\n`;
        const file = join(work, `readme-line-${block.line}.mjs`);
        writeFileSync(file, prelude + block.body + '\n');
        const r = await run(process.execPath, [file], work, env);
        expect(r.code, failure(r, file)).toBe(0);
        return;
      }

      // A shell block: the clone's install and test lines are .ci/run's (checked above), the rest runs.
      const script = block.body
        .split('\n')
        .map((l) => (LIFECYCLE.test(l.trim()) ? `: ${l.trim()}  # run by .ci/run` : l))
        .join('\n');
      const file = join(work, `readme-line-${block.line}.sh`);
      writeFileSync(file, script + '\n');
      const r = await run('bash', ['-e', '-o', 'pipefail', file], work, env);
      expect(r.code, failure(r, file)).toBe(0);
    });
  }
});
