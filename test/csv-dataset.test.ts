import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { EXIT } from '../src/core/errors.js';
import { resolveClassNames } from '../src/datasets/class-names.js';
import type { Dataset, DatasetOpenOptions, Sample } from '../src/datasets/dataset.js';
import { openDataset } from '../src/datasets/registry.js';
import { rejectsWithOneLine } from './support/errors.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';

/**
 * CSV manifests opened through the registry: real manifests naming real pattern-CLIP images, proper CSV
 * quoting, labels as names or indices, and each bad manifest refused as one line with its line number, exit 3.
 */
let dir: string;
let options: DatasetOpenOptions;

before(async () => {
  dir = await makeTempDir('clip-eval-csv-dataset-');
  options = { cacheRoot: join(dir, 'cache'), quiet: true };
  await mkdir(join(dir, 'set', 'images', 'a, b'), { recursive: true });
  await mkdir(join(dir, 'other'), { recursive: true });
  await classImage('apple').png().toFile(join(dir, 'set', 'images', 'apple.png'));
  await classImage('maple tree').jpeg().toFile(join(dir, 'set', 'images', 'a, b', 'maple "tree".jpg'));
  await classImage('tulip').webp({ lossless: true }).toFile(join(dir, 'other', 'tulip.webp'));
  await classImage('apple').png().toFile(join(dir, 'set', 'images', 'apple2.png'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(dataset: Dataset): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const sample of dataset.samples()) samples.push(sample);
  return samples;
}

async function manifest(name: string, text: string | Buffer): Promise<string> {
  const path = join(dir, 'set', name);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
  return path;
}

/** Opening must fail with one line matching `pattern`, and as an input error (exit 3). */
async function refuses(spec: string, pattern: RegExp, openOptions: DatasetOpenOptions = options): Promise<string> {
  const error = await rejectsWithOneLine(openDataset(spec, openOptions), pattern);
  assert.equal(error.exitCode, EXIT.input);
  return error.message;
}

test('csv: BOM, CRLF, quoted commas and "" escapes; paths relative to the manifest; class names the sorted labels with _ as spaces', async () => {
  const path = await manifest(
    'val.csv',
    '\uFEFFpath,label\r\n' +
      'images/apple.png,apple\r\n' +
      '"images/a, b/maple ""tree"".jpg",maple_tree\r\n' +
      '\r\n' +
      '../other/tulip.webp,"tulip"\r\n' +
      'images/apple2.png,apple',
  );
  for (const spec of [`csv:${path}`, path]) {
    const dataset = await openDataset(spec, options);
    assert.equal(dataset.name, spec);
    assert.deepEqual(dataset.classNames, ['apple', 'maple tree', 'tulip']);
    assert.equal(dataset.defaultTemplates, 'single');
    assert.equal(dataset.size, 4);
    const samples = await collect(dataset);
    assert.deepEqual(samples.map((s) => [s.id, s.label]), [
      ['images/apple.png', 0],
      ['images/a, b/maple "tree".jpg', 1],
      ['../other/tulip.webp', 2],
      ['images/apple2.png', 0],
    ]);
    assert.deepEqual(samples[2]!.image, { kind: 'file', path: join(dir, 'other', 'tulip.webp') });
  }
});

test('csv: with class names given, labels are names among them or 0-based indices', async () => {
  const names = join(dir, 'names.txt');
  await writeFile(names, 'tulip\napple\nmaple tree\n');
  const path = await manifest('indexed.csv', 'path,label\nimages/apple.png,1\n../other/tulip.webp,tulip\n"images/a, b/maple ""tree"".jpg",2\n');
  const dataset = await openDataset(path, { ...options, classNames: await resolveClassNames(names) });
  assert.deepEqual(dataset.classNames, ['tulip', 'apple', 'maple tree']);
  assert.deepEqual((await collect(dataset)).map((s) => s.label), [1, 0, 2]);

  const imagenet = await resolveClassNames('imagenet1k');
  const onImagenet = await openDataset(await manifest('imagenet.csv', 'path,label\nimages/apple.png,Granny Smith apple\n'), { ...options, classNames: imagenet });
  assert.equal(onImagenet.defaultTemplates, 'imagenet');
  assert.equal((await collect(onImagenet))[0]!.label, imagenet.names.indexOf('Granny Smith apple'));
  await refuses(await manifest('missile.csv', 'path,label\nimages/apple.png,missile\n'), /line 2: label "missile" names 2 classes in imagenet1k \(indices \d+, \d+\); write the index instead/, { ...options, classNames: imagenet });
});

test('csv: a row naming a missing file is refused when the manifest is opened, with its line number', async () => {
  const path = await manifest('missing.csv', 'path,label\nimages/apple.png,apple\n\nimages/pear.png,pear\n');
  const message = await refuses(`csv:${path}`, /manifest .*missing\.csv line 4: images\/pear\.png does not exist/);
  assert.match(message, /fix the row or the file/);
  await refuses(await manifest('folder-row.csv', 'path,label\nimages,apple\n../other/tulip.webp,tulip\n'), /line 2: images is a folder, not an image file/);
});

test('csv: labels out of range, unknown label names and indices without class names are refused, naming the line', async () => {
  const names = join(dir, 'two.txt');
  await writeFile(names, 'apple\ntulip\n');
  const withNames = { ...options, classNames: await resolveClassNames(names) };
  await refuses(await manifest('range.csv', 'path,label\nimages/apple.png,0\n../other/tulip.webp,2\n'), /line 3: label 2 is out of range \(2 class names, indices 0 to 1\)/, withNames);
  await refuses(await manifest('unknown.csv', 'path,label\nimages/apple.png,apple\n../other/tulip.webp,rose\n'), /line 3: label "rose" is not one of the 2 class names in .*two\.txt/, withNames);
  await refuses(await manifest('numeric.csv', 'path,label\nimages/apple.png,0\n'), /line 2: label 0 is an index, but no class names are given to index; give the class names/);
});

test('csv: a bad header, bad quoting, a wrong field count, a repeated path, no rows or bad UTF-8 are refused as one line', async () => {
  await refuses(await manifest('header.csv', 'file,class\nimages/apple.png,apple\n'), /line 1: the header must be exactly path,label/);
  await refuses(await manifest('header3.csv', 'path,label,extra\nimages/apple.png,apple,x\n'), /line 1: the header must be exactly path,label/);
  await refuses(await manifest('fields.csv', 'path,label\nimages/a, b/x.jpg,apple\n'), /line 2: 3 fields, expected 2/);
  await refuses(await manifest('open-quote.csv', 'path,label\n"images/apple.png,apple\nx,y\n'), /line 2: a quoted field is not closed/);
  await refuses(await manifest('stray-quote.csv', 'path,label\nimages/ap"ple.png,apple\n'), /line 2: a quote inside an unquoted field/);
  await refuses(await manifest('after-quote.csv', 'path,label\n"images/apple.png"x,apple\n'), /line 2: text after a closing quote/);
  await refuses(await manifest('twice.csv', 'path,label\nimages/apple.png,apple\n"images/apple.png",apple\n'), /line 3: images\/apple\.png is listed again \(first on line 2\)/);
  await refuses(await manifest('empty.csv', 'path,label\n'), /no rows after the header/);
  await refuses(await manifest('latin1.csv', Buffer.from('path,label\nimages/apple.png,caf\xe9\n', 'latin1')), /not valid UTF-8 \(byte 31, line 2\)/);
  await refuses(`csv:${join(dir, 'absent.csv')}`, /manifest .*absent\.csv: cannot read the file \(ENOENT\)/);
});

test('csv: a line number counts the lines inside a quoted field', async () => {
  await refuses(await manifest('multiline.csv', 'path,label\n"images/apple.png",apple\n"images/new\nline.png",apple\nimages/gone.png,apple\n'), /line 3: the path images\/new\\x0aline\.png holds a control character; fix the row$/);
  await refuses(await manifest('after-multiline.csv', 'path,label\n"images/apple.png","app\nle"\nimages/gone.png,apple\n'), /line 4: images\/gone\.png does not exist/);
});

test('csv: a path holding a NUL or another control character is refused with its line (exit 3), for labels and captions', async () => {
  await refuses(await manifest('nul.csv', 'path,label\nimages/apple.png,apple\nimages/apple\0.png,tulip\n'), /line 3: the path images\/apple\\x00\.png holds a control character; fix the row$/);
  await refuses(await manifest('escape.csv', 'path,label\nimages/apple.png,apple\n../other/\x1b[31mtulip.webp,tulip\n'), /line 3: the path \.\.\/other\/\\x1b\[31mtulip\.webp holds a control character/);
  await refuses(await manifest('nul-captions.csv', 'path,caption\nimages/apple\0.png,an apple\n'), /line 2: the path images\/apple\\x00\.png holds a control character/);
});

test('csv: one label for every row, or labels that are one prompt to CLIP, are refused (exit 3)', async () => {
  await refuses(await manifest('one-class.csv', 'path,label\nimages/apple.png,apple\nimages/apple2.png,apple\n'), /every row has the label "apple", and zero-shot classification needs at least 2 classes; give the class names$/);
  await refuses(
    await manifest('same-prompt.csv', 'path,label\nimages/apple.png,tabby_cat\nimages/apple2.png,dog\n../other/tulip.webp,tabby cat\n'),
    /labels "tabby cat" \(line 4\) and "tabby_cat" \(line 2\) are one class name to CLIP \("tabby cat": its tokenizer lowercases, and _ reads as a space\); write one of them$/,
  );
  await refuses(await manifest('same-case.csv', 'path,label\nimages/apple.png,Apple\nimages/apple2.png,apple\n'), /labels "Apple" \(line 2\) and "apple" \(line 3\) are one class name to CLIP/);
});

