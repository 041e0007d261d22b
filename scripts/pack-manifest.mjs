#!/usr/bin/env node
// The package.json that goes into the tarball has no `install` and no `prepare` script:
//
//   node scripts/pack-manifest.mjs strip     (prepack)   saves package.json, writes it without them
//   node scripts/pack-manifest.mjs restore   (postpack)  puts the saved package.json back
//
// In a clone, `npm install` runs them: `install` builds the addon when no binary loads (scripts/install.mjs) and
// `prepare` compiles the TypeScript. In a user's project neither is needed: the tarball carries dist/ and the
// prebuilds, and a source build is one command (README, Building from source). npm 11 holds a dependency's
// install scripts for approval and lists each such package after every install, so a package with them is one
// more warning for every user; without them there is nothing to approve.
//
// Publish the tarball that `npm pack` writes (`npm publish tea-llama-X.Y.Z.tgz`): npm publishes a folder with the
// manifest it reads after postpack, that is with the scripts.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = join(root, 'package.json');
const saved = join(root, '.package.json.prepack');
const DROPPED = ['install', 'prepare'];

const command = process.argv[2];
if (command === 'strip') {
  // A leftover from a pack that failed between the two steps is the real manifest: put it back first.
  if (existsSync(saved)) renameSync(saved, manifest);
  const text = readFileSync(manifest, 'utf8');
  writeFileSync(saved, text);
  const pkg = JSON.parse(text);
  for (const name of DROPPED) delete pkg.scripts?.[name];
  writeFileSync(manifest, JSON.stringify(pkg, null, 2) + '\n');
} else if (command === 'restore') {
  if (existsSync(saved)) renameSync(saved, manifest);
} else {
  console.error('usage: node scripts/pack-manifest.mjs strip|restore');
  process.exit(2);
}
