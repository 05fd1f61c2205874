// Builds one JS plugin into a component: bundles `<plugin>/plugin.js` with the SDK glue
// into one ES module, then componentizes it against wit/plugin.wit.
//
// usage: node build-plugin.js <plugin-dir> <out.wasm>
import { componentize } from '@bytecodealliance/componentize-js';
import { rolldown } from 'rolldown';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [pluginDir, out] = process.argv.slice(2).map((p) => resolve(p));
if (!out) {
  console.error('usage: node build-plugin.js <plugin-dir> <out.wasm>');
  process.exit(2);
}
const sdk = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const wit = resolve(sdk, '../../wit/plugin.wit');
const HOST = 'tollgate:plugin/host@0.4.0';

// Named imports: componentize-js binds the world's imports by the names a module imports.
const entry = `
import { log, config, nowMs, requestBody, keepPrepared, prepared, usage } from '${HOST}';
import plugin from ${JSON.stringify(join(pluginDir, 'plugin.js'))};
import { exportGuest } from ${JSON.stringify(join(sdk, 'src/component.js'))};
export const guest = exportGuest(plugin, { log, config, nowMs, requestBody, keepPrepared, prepared, usage });
`;

const work = await mkdtemp(join(tmpdir(), 'tollgate-js-'));
try {
  const entryPath = join(work, 'entry.js');
  await writeFile(entryPath, entry);
  const bundle = await rolldown({
    input: entryPath,
    external: [HOST],
    // The plugin imports the SDK by package name; resolve it here without an install.
    resolve: { alias: { '@tollgate/guest': join(sdk, 'src/index.js') } },
    logLevel: 'warn',
  });
  const { output } = await bundle.generate({ format: 'esm' });
  await bundle.close();
  const source = output[0].code;

  const { component } = await componentize(source, {
    sourceName: 'plugin.js',
    witPath: wit,
    worldName: 'plugin',
    // A pure component: the host's WASI is deny-all, and the plugin needs none of it
    // (time comes from host.now-ms, logs go through host.log).
    disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
  });
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, component);
  console.log(`${out}: ${component.length} bytes`);
} finally {
  await rm(work, { recursive: true, force: true });
}
