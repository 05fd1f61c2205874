// Regenerates types/ from wit/plugin.wit with jco's guest-types generator.
//
// Calls jco-transpile directly rather than `jco guest-types`: jco 1.35's CLI runs the
// generator with preview2-shim 0.26, which starts with no preopened directories, so the
// generator cannot read any WIT file. Preopening `/` on the shim instance it uses fixes that.
import { createRequire } from 'node:module';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wit = resolve(here, '../../../wit/plugin.wit');
const outDir = resolve(here, '../types');

const transpileEntry = createRequire(import.meta.url).resolve('@bytecodealliance/jco-transpile');
const transpileRequire = createRequire(transpileEntry);
const shim = await import(pathToFileURL(transpileRequire.resolve('@bytecodealliance/preview2-shim/filesystem')));
shim._addPreopen('/', '/');
const { generateGuestTypes } = await import(pathToFileURL(transpileEntry));

const files = await generateGuestTypes(wit, { worldName: 'plugin', outDir: '' });
await rm(outDir, { recursive: true, force: true });
for (const [name, source] of Object.entries(files)) {
  const path = join(outDir, name);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, source);
}
console.log(`wrote ${Object.keys(files).length} files to ${outDir}`);
