#!/usr/bin/env node
// The prebuild step (prebuildify's job, for a cmake-js build): builds the prebuild layout (TEA_DYNAMIC_BACKENDS)
// and places the artefacts where node-gyp-build looks:
//
//   prebuilds/<platform>-<arch>/tea-llama[.glibc|.musl].napi.node   the addon (N-API: one file for every Node)
//   prebuilds/<platform>-<arch>/lib*.so | *.dylib | *.dll           llama, ggml, the CPU variant modules
//   prebuilds-gpu/<platform>-<arch>-<gpu>/                          each GPU backend module, a separate artefact
//
// CPU variants that need AMX are left out: some CPUs advertise AMX yet fault on it (binding/backends.cpp also
// refuses any variant whose state the OS has not enabled).
//
//   node scripts/prebuild.mjs [--if-missing]      (TEA_BACKEND=cuda|vulkan|metal adds that GPU module)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const target = `${process.platform}-${process.arch}`;
const libc = process.platform === 'linux' ? (process.report.getReport().header.glibcVersionRuntime ? '.glibc' : '.musl') : '';
const outDir = join(root, 'prebuilds', target);
const addonName = `tea-llama${libc}.napi.node`;

if (process.argv.includes('--if-missing') && existsSync(join(outDir, addonName))) {
  console.error(`[tea-llama] prebuilds/${target} exists`);
  process.exit(0);
}

const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), '--dynamic'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const release = join(root, 'build', 'prebuild', 'Release');
// llama.cpp's CMake writes its libraries and backend modules to bin/, the addon goes to Release/.
const libraryDirs = [release, join(root, 'build', 'prebuild', 'bin')].filter((d) => existsSync(d));
const isLibrary = (f) => /\.(so|dylib|dll)$/.test(f);
const AMX_VARIANTS = /ggml-cpu-sapphirerapids/;
// Metal ships inside the macOS prebuild (every Apple Silicon Mac has it); the others are separate packages.
const GPU_MODULE = /ggml-(cuda|vulkan|hip|sycl|musa|opencl)\./;

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
copyFileSync(join(release, 'tea_llama.node'), join(outDir, addonName));
const shipped = [addonName];
const libraries = libraryDirs.flatMap((dir) => readdirSync(dir).filter(isLibrary).map((file) => ({ dir, file })));
for (const { dir, file } of libraries) {
  if (AMX_VARIANTS.test(file)) continue;
  const gpu = file.match(GPU_MODULE);
  if (gpu) {
    const gpuDir = join(root, 'prebuilds-gpu', `${target}-${gpu[1]}`);
    mkdirSync(gpuDir, { recursive: true });
    copyFileSync(join(dir, file), join(gpuDir, file));
    writeFileSync(
      join(gpuDir, 'package.json'),
      JSON.stringify({ name: `@tea-llama/${target}-${gpu[1]}`, version: JSON.parse(readFileSync(join(root, 'package.json'))).version, os: [process.platform], cpu: [process.arch] }, null, 2),
    );
    continue;
  }
  copyFileSync(join(dir, file), join(outDir, file));
  shipped.push(file);
}

// OpenMP's runtime travels with the libraries, so the prebuild does not depend on the system having libgomp.
if (process.platform === 'linux') {
  const gomp = spawnSync('gcc', ['-print-file-name=libgomp.so.1'], { encoding: 'utf8' }).stdout?.trim();
  if (gomp && gomp.startsWith('/') && existsSync(gomp)) {
    copyFileSync(gomp, join(outDir, 'libgomp.so.1'));
    shipped.push('libgomp.so.1');
  }
}

const bytes = shipped.reduce((sum, f) => sum + statSync(join(outDir, f)).size, 0);
console.error(`[tea-llama] prebuilds/${target}: ${shipped.length} files, ${(bytes / 1048576).toFixed(1)} MiB`);
