import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { EXIT } from '../src/core/errors.js';
import { silentLogger } from '../src/core/log.js';
import { resolveClassNames } from '../src/datasets/class-names.js';
import type { Dataset, DatasetOpenOptions, Sample } from '../src/datasets/dataset.js';
import { IMAGENET_CLASSNAMES, IMAGENET_SYNSETS } from '../src/datasets/imagenet/class-names.js';
import { openDataset } from '../src/datasets/registry.js';
import { rejectsWithOneLine } from './support/errors.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';
import { havePython } from './support/xml.js';

/**
 * Image folders (torchvision's ImageFolder layout) opened through the registry: real folders of real
 * pattern-CLIP images, the order ImageFolder gives them, and each layout it refuses as one line, exit 3.
 */
let dir: string;
let options: DatasetOpenOptions;
let tinyPng: Buffer;

before(async () => {
  dir = await makeTempDir('clip-eval-folder-dataset-');
  options = { cacheRoot: join(dir, 'cache'), quiet: true };
  tinyPng = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#808080' } }).png().toBuffer();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function put(path: string, bytes: Buffer | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}

async function collect(dataset: Dataset): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const sample of dataset.samples()) samples.push(sample);
  return samples;
}

/** Opening must fail with one line matching `pattern`, and as an input error (exit 3). */
async function refuses(spec: string, pattern: RegExp, openOptions: DatasetOpenOptions = options): Promise<string> {
  const error = await rejectsWithOneLine(openDataset(spec, openOptions), pattern);
  assert.equal(error.exitCode, EXIT.input);
  return error.message;
}

/** A folder of classes, each image a tiny PNG: layouts for the refusal tests. */
async function tinyFolder(name: string, files: readonly string[]): Promise<string> {
  const root = join(dir, name);
  for (const file of files) await put(join(root, file), tinyPng);
  return root;
}

test('folder: classes in sorted folder order, images in ImageFolder order at any depth, ids below the root, names with _ as spaces', async () => {
  const root = join(dir, 'pets');
  const image = (className: string) => classImage(className).png().toBuffer();
  await put(join(root, 'tulip', 'b.png'), await image('tulip'));
  await put(join(root, 'tulip', 'a.webp'), await classImage('tulip').webp({ lossless: true }).toBuffer());
  await put(join(root, 'maple_tree', 'a', 'x.png'), await image('maple tree'));
  await put(join(root, 'maple_tree', 'a.png'), await image('maple tree'));
  await put(join(root, 'maple_tree', 'a-b', 'y.JPG'), await classImage('maple tree').jpeg().toBuffer());
  await put(join(root, 'maple_tree', 'notes.txt'), 'not an image');
  await put(join(root, 'maple_tree', '._a.png'), 'macOS resource fork');
  await put(join(root, 'apple', 'deep', 'er', 'apple.png'), await image('apple'));
  await put(join(root, '.ipynb_checkpoints', 'x.png'), await image('apple'));
  await put(join(root, 'README.md'), 'files beside the class folders are no class');

  for (const spec of [root, `folder:${root}`]) {
    const dataset = await openDataset(spec, options);
    assert.equal(dataset.name, spec);
    assert.deepEqual(dataset.classNames, ['apple', 'maple tree', 'tulip']);
    assert.equal(dataset.defaultTemplates, 'single');
    assert.equal(dataset.size, 6);
    assert.equal(dataset.sha256, undefined, 'the evaluation digests what it streams');
    const samples = await collect(dataset);
    // os.walk's folders sorted by path ("" < "a" < "a-b"), then the names in each: not a plain path sort.
    assert.deepEqual(samples.map((s) => [s.id, s.label]), [
      ['apple/deep/er/apple.png', 0],
      ['maple_tree/a.png', 1],
      ['maple_tree/a/x.png', 1],
      ['maple_tree/a-b/y.JPG', 1],
      ['tulip/a.webp', 2],
      ['tulip/b.png', 2],
    ]);
    assert.deepEqual(samples[1]!.image, { kind: 'file', path: join(root, 'maple_tree', 'a.png') });
    assert.deepEqual((await collect(dataset)).map((s) => s.id), samples.map((s) => s.id), 'each call starts again from the first');
  }
});

test('folder: names sort by code point, as Python sorts them (U+FF21 before U+1F600, capitals before small letters)', async () => {
  const root = await tinyFolder('unicode', ['b/\u{1F600}.png', 'b/\uFF21.png', 'b/Z.png', 'b/a.png', 'Zebra/1.png', 'émeu/1.png']);
  const dataset = await openDataset(root, options);
  assert.deepEqual(dataset.classNames, ['Zebra', 'b', 'émeu']);
  assert.deepEqual((await collect(dataset)).map((s) => s.id), ['Zebra/1.png', 'b/Z.png', 'b/a.png', 'b/\uFF21.png', 'b/\u{1F600}.png', 'émeu/1.png']);
});

test('folder: the same samples, in the same order, as torchvision\'s ImageFolder listing run in Python', { skip: havePython ? false : 'needs python3' }, async () => {
  const root = await tinyFolder('python-order', [
    'dog/a.png', 'dog/a/b.PNG', 'dog/a-b/c.jpeg', 'dog/a.b/d.tif', 'dog/A/e.gif', 'dog/\uFF21.png', 'dog/\u{1F600}/f.png',
    'cat_face/z.avif', 'cat_face/y/x/w.webp', 'cat_face/skip.txt', 'Cat/1.tiff',
  ]);
  // torchvision.datasets.folder.find_classes and make_dataset, without the hidden entries clip-eval leaves out.
  const script = [
    'import json, os, sys',
    'root = sys.argv[1]',
    'ext = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".avif", ".gif")',
    'classes = sorted(e.name for e in os.scandir(root) if e.is_dir())',
    'out = []',
    'for i, c in enumerate(classes):',
    '    for r, _, names in sorted(os.walk(os.path.join(root, c), followlinks=True)):',
    '        for n in sorted(names):',
    '            if n.lower().endswith(ext): out.append([os.path.relpath(os.path.join(r, n), root), i])',
    'print(json.dumps([classes, out]))',
  ].join('\n');
  const python = spawnSync('python3', ['-c', script, root], { encoding: 'utf8' });
  assert.equal(python.status, 0, python.stderr);
  const [classes, listed] = JSON.parse(python.stdout) as [string[], [string, number][]];
  const dataset = await openDataset(root, options);
  assert.deepEqual(dataset.classNames, classes.map((c) => c.replace(/_/g, ' ')));
  assert.deepEqual((await collect(dataset)).map((s) => [s.id, s.label]), listed);
});

test('folder: a class folder with no images is refused, naming it', async () => {
  const root = await tinyFolder('empty-class', ['cat/1.png', 'dog/readme.txt', 'dog/sub/notes.md']);
  await mkdir(join(root, 'eel'));
  const message = await refuses(root, /class folders dog, eel have no images/);
  assert.match(message, /empty-class/);
  await refuses(await tinyFolder('no-classes', ['loose.png']), /no class subfolders/);
});

test('folder: links inside the folder are followed; links out of it, dangling links and links back up are refused', async () => {
  const outside = await tinyFolder('outside', ['elsewhere.png', 'cls/1.png']);
  const inside = await tinyFolder('links-inside', ['cat/1.png', 'shared/2.png']);
  await symlink(join(inside, 'shared', '2.png'), join(inside, 'cat', '3.png'));
  await symlink(join(inside, 'shared'), join(inside, 'cat', 'more'));
  const dataset = await openDataset(inside, options);
  assert.deepEqual((await collect(dataset)).map((s) => [s.id, s.label]), [['cat/1.png', 0], ['cat/3.png', 0], ['cat/more/2.png', 0], ['shared/2.png', 1]]);

  const fileOut = await tinyFolder('link-file-out', ['cat/1.png', 'dog/1.png']);
  await symlink(join(outside, 'elsewhere.png'), join(fileOut, 'cat', 'x.png'));
  await refuses(fileOut, /cat\/x\.png is a symbolic link to .*outside the folder/);

  const classOut = await tinyFolder('link-class-out', ['cat/1.png', 'cow/1.png']);
  await symlink(join(outside, 'cls'), join(classOut, 'dog'));
  await refuses(classOut, /dog is a symbolic link to .*outside the folder/);

  const dangling = await tinyFolder('link-dangling', ['cat/1.png', 'dog/1.png']);
  await symlink(join(dangling, 'nowhere.png'), join(dangling, 'cat', 'gone.png'));
  await refuses(dangling, /cat\/gone\.png is a symbolic link to nothing/);

  const loop = await tinyFolder('link-loop', ['cat/sub/1.png', 'dog/1.png']);
  await symlink(join(loop, 'cat'), join(loop, 'cat', 'sub', 'up'));
  await refuses(loop, /cat\/sub\/up links back to a folder that contains it/);
});

test('folder: an image name on a FIFO is refused before anything is read; BMP, PPM and PGM are refused as undecodable', async () => {
  const fifo = await tinyFolder('fifo', ['cat/1.png', 'dog/1.png']);
  assert.equal(spawnSync('mkfifo', [join(fifo, 'cat', 'pipe.png')]).status, 0, 'mkfifo makes a FIFO');
  await refuses(fifo, /cat\/pipe\.png is not a regular file/);
  const bmp = await tinyFolder('bmp', ['cat/1.png', 'cat/2.bmp', 'dog/3.PPM']);
  await refuses(bmp, /2 images in BMP, PPM or PGM \(cat\/2\.bmp, dog\/3\.PPM\).*convert them to PNG/);
});

test('folder: a missing folder or a file given as folder: is refused; a path that is no folder is no data set', async () => {
  await refuses(`folder:${join(dir, 'absent')}`, /image folder .*absent: does not exist/);
  await put(join(dir, 'plain.png'), tinyPng);
  await refuses(`folder:${join(dir, 'plain.png')}`, /is not a folder/);
  await refuses(join(dir, 'absent'), /not a known data set/);
});

test('folder: given class names replace the folder names, one per folder in sorted order', async () => {
  const root = await tinyFolder('renamed', ['b_dog/1.png', 'a_cat/1.png']);
  const namesFile = join(dir, 'renamed.txt');
  await writeFile(namesFile, 'kitten\npuppy\n');
  const dataset = await openDataset(root, { ...options, classNames: await resolveClassNames(namesFile) });
  assert.deepEqual(dataset.classNames, ['kitten', 'puppy']);
  assert.equal(dataset.defaultTemplates, 'single');
  await writeFile(namesFile, 'kitten\npuppy\nfoal\n');
  await refuses(root, /2 class folders but 3 class names in .*renamed\.txt/, { ...options, classNames: await resolveClassNames(namesFile) });
});

test('folder: the ImageNet-1k class names on a folder that is not the ImageNet validation layout are refused', async () => {
  const root = await tinyFolder('not-imagenet', ['cat/1.png', 'dog/1.png']);
  const message = await refuses(root, /not the ImageNet validation layout/, { ...options, classNames: await resolveClassNames('imagenet1k') });
  assert.match(message, /1000 missing \(n01440764, n01443537, n01484850 and 997 more\)/);
  assert.match(message, /2 extra folders \(cat, dog\)/);
});

test('ImageNet-1k: the 1,000 synset folders map in sorted order to the ImageNet names, with or without the names given', async () => {
  const root = join(dir, 'imagenet-val');
  // Created in reverse so that the order comes from sorting, not from the file system.
  for (const synset of [...IMAGENET_SYNSETS].reverse()) await put(join(root, synset, `ILSVRC2012_val_${synset}.png`), tinyPng);
  const imagenet = await resolveClassNames('imagenet1k');
  const said: string[] = [];
  const logger = { ...silentLogger, info: (message: string) => said.push(message) };
  for (const openOptions of [{ ...options, classNames: imagenet }, { ...options, logger }]) {
    const dataset = await openDataset(root, openOptions);
    assert.deepEqual(dataset.classNames, IMAGENET_CLASSNAMES);
    assert.equal(dataset.defaultTemplates, 'imagenet');
    assert.equal(dataset.size, 1000);
    const samples = await collect(dataset);
    assert.deepEqual(samples.map((s) => s.label), Array.from({ length: 1000 }, (_, i) => i));
    assert.equal(samples[0]!.id, 'n01440764/ILSVRC2012_val_n01440764.png');
    assert.equal(samples[999]!.id, 'n15075141/ILSVRC2012_val_n15075141.png');
  }
  assert.deepEqual(said, [`image folder ${root}: its class folders are the 1,000 ImageNet-1k synsets; using the ImageNet-1k class names and templates`]);

  await rm(join(root, IMAGENET_SYNSETS[5]!), { recursive: true });
  await rm(join(root, IMAGENET_SYNSETS[7]!), { recursive: true });
  await put(join(root, 'n99999999', '1.png'), tinyPng);
  await put(join(root, 'cats', '1.png'), tinyPng);
  await put(join(root, 'dogs', '1.png'), tinyPng);
  const message = await refuses(root, /not the ImageNet validation layout/, { ...options, classNames: imagenet });
  assert.match(message, new RegExp(`2 missing \\(${IMAGENET_SYNSETS[5]}, ${IMAGENET_SYNSETS[7]}\\)`));
  assert.match(message, /1 unknown synset \(n99999999\)/);
  assert.match(message, /2 extra folders \(cats, dogs\)/);

  const plain = await openDataset(root, options);
  assert.equal(plain.defaultTemplates, 'single', 'not exactly the 1,000 synsets: folder names, not ImageNet names');
  assert.equal(plain.classNames.length, 1001);
  assert.deepEqual(plain.classNames.slice(0, 3), ['cats', 'dogs', IMAGENET_SYNSETS[0]]);
});

test('folder: a folder with one class folder is refused, saying it may be the parent of the class folders', async () => {
  const root = await tinyFolder('imagenet-parent', ['val/n01440764/1.png', 'val/n01443537/2.png']);
  const message = await refuses(root, /image folder .*imagenet-parent: only one class folder \(val\), and zero-shot classification needs at least 2 classes; if val holds the class folders, give .*imagenet-parent\/val$/);
  assert.doesNotMatch(message, /\n/);
});

test('folder: class folders that are one prompt to CLIP (case, _ for a space) are refused, naming both', async () => {
  await refuses(await tinyFolder('same-case', ['apple/1.png', 'Apple/2.png', 'pear/3.png']), /class folders Apple and apple are one class name to CLIP \("apple": its tokenizer lowercases, and _ reads as a space\); merge or rename one; give the class names$/);
  await refuses(await tinyFolder('same-underscore', ['tabby cat/1.png', 'tabby_cat/2.png']), /class folders tabby cat and tabby_cat are one class name to CLIP/);
  // Names given for the folders replace theirs.
  const namesFile = join(dir, 'same-names.txt');
  await writeFile(namesFile, 'tabby cat\ntabby kitten\n');
  const dataset = await openDataset(join(dir, 'same-underscore'), { ...options, classNames: await resolveClassNames(namesFile) });
  assert.deepEqual(dataset.classNames, ['tabby cat', 'tabby kitten']);
});

test('folder: names that are not UTF-8 are refused when the folder opens, shown with escapes, not read as U+FFFD', async () => {
  const root = await tinyFolder('not-utf8', ['cat/a\uFFFD.png', 'dog/1.png']);
  const bytePath = (...parts: (string | number[])[]) => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : Buffer.from(part))));
  // a\xff.png and a\xfe.png: both decode to the a\uFFFD.png beside them.
  await writeFile(bytePath(root, '/cat/a', [0xff], '.png'), tinyPng);
  await writeFile(bytePath(root, '/cat/a', [0xfe], '.png'), tinyPng);
  await refuses(root, /image folder .*not-utf8: the name cat\/a\\x(ff|fe)\.png is not UTF-8, and names here are read as text; rename it/);
  // A class folder named so, too; a file that is no image is ignored as any other.
  const classes = await tinyFolder('not-utf8-class', ['dog/1.png', 'cat/1.png']);
  await writeFile(bytePath(classes, '/cat/notes', [0xe9], '.txt'), 'ignored');
  assert.equal((await openDataset(classes, options)).size, 2);
  await mkdir(bytePath(classes, '/caf', [0xe9]));
  await refuses(classes, /not-utf8-class: the name caf\\xe9 is not UTF-8/);
});

test('folder: its split is "all", not the folder\'s name; a split asked for is a usage error', async () => {
  const root = await tinyFolder('pets', ['cat/1.png', 'dog/1.png']);
  assert.equal((await openDataset(root, options)).split, 'all');
  const error = await rejectsWithOneLine(openDataset(root, { ...options, split: 'train' }), /^split train: an image folder has no splits \(.*pets is evaluated whole\); give the folder of the split itself$/);
  assert.equal(error.exitCode, EXIT.usage);
});

