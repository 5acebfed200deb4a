import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCommand } from './support/cli.js';
import { repoRoot } from './support/paths.js';

// onnxruntime-node's install step downloads CUDA libraries from outside the npm registry, so an
// offline install must never run it. npm 11 blocks dependency install scripts unless package.json's
// allowScripts approves them; an explicit denial keeps it blocked and the install quiet.

test('install: package.json denies onnxruntime-node its install script, and npm has nothing left to review', async () => {
  const manifest = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { allowScripts?: Record<string, unknown> };
  assert.equal(manifest.allowScripts?.['onnxruntime-node'], false);
  const listed = await runCommand('npm', ['install-scripts', 'ls'], { cwd: repoRoot, timeoutMs: 60_000 });
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /No packages with unreviewed install scripts/);
});

test('install: npm in the checkout warns of no unknown or deprecated config (no .npmrc install key)', async () => {
  assert.equal(existsSync(join(repoRoot, '.npmrc')), false, 'the deprecated .npmrc key is gone');
  // An npm_config_* variable from a parent npm (npm test) would be read as config too: leave them out.
  const env: NodeJS.ProcessEnv = {};
  for (const name of Object.keys(process.env)) if (name.toLowerCase().startsWith('npm_config_')) env[name] = undefined;
  const run = await runCommand('npm', ['config', 'get', 'registry'], { cwd: repoRoot, env, timeoutMs: 60_000 });
  assert.equal(run.code, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /Unknown (project|env|user) config/);
});
