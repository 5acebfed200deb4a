import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { PUBLISHED_DUPLICATES, resolveClassNames, samePromptPair } from '../src/datasets/class-names.js';
import { IMAGENET_CLASSNAMES, IMAGENET_SYNSETS } from '../src/datasets/imagenet/class-names.js';
import { defaultTemplateSpec, resolveLabels, validateLabels } from '../src/text/labels.js';
import { IMAGENET_TEMPLATES } from '../src/text/imagenet-templates.js';
import { resolveTemplates } from '../src/text/templates.js';
import { rejectsWithOneLine } from './support/errors.js';
import { makeTestTempDir } from './support/paths.js';

test('ImageNet-1k data: 1,000 names as published (two "missile" included), 1,000 sorted synsets, 80 templates', () => {
  assert.equal(IMAGENET_CLASSNAMES.length, 1000);
  assert.deepEqual([IMAGENET_CLASSNAMES[0], IMAGENET_CLASSNAMES[1], IMAGENET_CLASSNAMES[999]], ['tench', 'goldfish', 'toilet paper']);
  assert.equal(IMAGENET_CLASSNAMES.filter((name) => name === 'missile').length, 2);
  assert.equal(IMAGENET_SYNSETS.length, 1000);
  assert.equal(new Set(IMAGENET_SYNSETS).size, 1000);
  assert.deepEqual([...IMAGENET_SYNSETS].sort(), IMAGENET_SYNSETS, 'label order is the sorted folder order');
  assert.deepEqual([IMAGENET_SYNSETS[0], IMAGENET_SYNSETS[999]], ['n01440764', 'n15075141']);
  assert.ok(IMAGENET_SYNSETS.every((id) => /^n\d{8}$/.test(id)));
  assert.equal(IMAGENET_TEMPLATES.length, 80);
  assert.equal(new Set(IMAGENET_TEMPLATES).size, 80);
  assert.ok(IMAGENET_TEMPLATES.every((template) => template.includes('{}')));
  assert.deepEqual([IMAGENET_TEMPLATES[0], IMAGENET_TEMPLATES[79]], ['a bad photo of a {}.', 'a tattoo of the {}.']);
});

test('class names: built-in lists, or a file with one name per line in label order; blank lines and bad UTF-8 refused', async (t) => {
  const imagenet = await resolveClassNames('imagenet1k');
  assert.equal(imagenet.names.length, 1000);
  assert.equal(imagenet.synsets?.length, 1000);
  assert.equal((await resolveClassNames('cifar100')).names[1], 'aquarium fish');
  assert.equal((await resolveClassNames('cifar10')).names.length, 10);
  const dir = await makeTestTempDir(t);
  const file = join(dir, 'names.txt');
  await writeFile(file, 'cat\r\ndog\nmissile\nmissile\n');
  assert.deepEqual((await resolveClassNames(file)).names, ['cat', 'dog', 'missile', 'missile']);
  await writeFile(file, 'cat\n\ndog\n');
  await rejectsWithOneLine(resolveClassNames(file), /line 2 is blank/);
  await writeFile(file, Buffer.from([0x63, 0x61, 0xff, 0x0a]));
  await rejectsWithOneLine(resolveClassNames(file), /UTF-8/);
  await rejectsWithOneLine(resolveClassNames(join(dir, 'missing.txt')), /missing\.txt/);
});

test("templates: 'imagenet' is OpenAI's 80; template files may write CLIP_benchmark's {c}", async (t) => {
  assert.equal((await resolveTemplates('imagenet')).templates.length, 80);
  const dir = await makeTestTempDir(t);
  const file = join(dir, 'templates.txt');
  await writeFile(file, 'a photo of a {c}.\nart of the {}.\n');
  assert.deepEqual((await resolveTemplates(file)).templates, ['a photo of a {}.', 'art of the {}.']);
});

test('classify --labels imagenet1k: the 1,000 names with the 80 ImageNet templates by default', async () => {
  const labels = await resolveLabels('imagenet1k');
  assert.equal(labels.labels.length, 1000);
  assert.equal(defaultTemplateSpec(labels), 'imagenet');
  assert.equal(defaultTemplateSpec(await resolveLabels('cifar100')), 'openai');
  assert.equal(defaultTemplateSpec(await resolveLabels('cat,dog')), 'single');
});

test('one rule for names that make the same prompt: refused everywhere but for the published ImageNet-1k duplicates', async (t) => {
  assert.deepEqual([...PUBLISHED_DUPLICATES], ['missile', 'sunglasses']);
  assert.equal(samePromptPair(IMAGENET_CLASSNAMES), undefined);
  assert.deepEqual(samePromptPair(['apple', 'pear', 'Apple']), [0, 2]);
  assert.deepEqual(samePromptPair(['tabby  cat', 'dog', 'tabby cat']), [0, 2]);
  assert.deepEqual(samePromptPair(['cat', 'dog', 'cat']), [0, 2]);
  // Only as published: the same name exactly, not a variant of it.
  assert.deepEqual(samePromptPair(['missile', 'Missile']), [0, 1]);
  // classify --labels imagenet1k and classify on ImageNet samples check the labels by this rule.
  assert.doesNotThrow(() => validateLabels(IMAGENET_CLASSNAMES, 'labels'));
  assert.throws(() => validateLabels(['apple', 'Apple'], 'labels'), /labels "apple" and "Apple" are the same to CLIP/);

  const dir = await makeTestTempDir(t);
  const file = join(dir, 'names.txt');
  await writeFile(file, 'tabby cat\ndog\nTabby Cat\n');
  const same = await rejectsWithOneLine(resolveClassNames(file), /class names .*names\.txt: lines 1 and 3 \("tabby cat" and "Tabby Cat"\) are the same prompt to CLIP/);
  assert.equal(same.exitCode, 2);
  await writeFile(file, 'cat\n');
  await rejectsWithOneLine(resolveClassNames(file), /only one class name; zero-shot classification needs at least 2/);
});

