import { statSync, type Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ClipEvalError, fileSystemError, inputError, isFileSystemError, usageError } from '../core/errors.js';
import { showUnprintable } from '../core/unprintable.js';
import { cleanClassName } from './cifar/class-names.js';
import { MIN_CLASSES, samePromptPair, type ClassNameList } from './class-names.js';
import type { Dataset, DatasetOpenOptions, DatasetSource, Sample } from './dataset.js';
import { IMAGENET_CLASSNAMES, IMAGENET_SYNSETS } from './imagenet/class-names.js';

/**
 * Image folders in torchvision's ImageFolder layout: one subfolder per class, images at any depth
 * below it. Classes come in sorted folder-name order and images in the order ImageFolder lists them,
 * so that sample i here is sample i there.
 */

const PREFIX = 'folder:';
/** An image folder is one set of images, not a split of a data set: its split is all of it. */
const FOLDER_SPLIT = 'all';

/** torchvision's IMG_EXTENSIONS, with AVIF and GIF, which sharp decodes too. */
const FOLDER_IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp', '.avif', '.gif',
]);

/**
 * ImageFolder lists these, but the decoder (sharp) cannot read them: refused when the folder is
 * opened rather than leaving them out (a different sample set) or failing in the middle of a run.
 */
const UNDECODABLE_EXTENSIONS: ReadonlySet<string> = new Set(['.ppm', '.bmp', '.pgm']);

/**
 * Python's order for str: by code point. JavaScript's < compares UTF-16 code units, which puts
 * U+E000–U+FFFF after the surrogates of U+10000 and above; shifting both ranges restores code point order.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x += x >= 0xe000 ? -0x800 : 0x2000;
      y += y >= 0xe000 ? -0x800 : 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A name's bytes, those outside printable ASCII (and the backslash) as \xNN: how a name that is not UTF-8 is shown. */
function escapedBytes(bytes: Buffer): string {
  return [...bytes].map((byte) => (byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`)).join('');
}

interface FolderEntry {
  name: string;
  entry: Dirent<Buffer>;
}

/**
 * A folder's entries with their names as text. Node decodes a name that is not UTF-8 with U+FFFD, and
 * then it names no file, or another one (a\xff.png and a\xfe.png both read as a\uFFFD.png), so such a
 * name among the entries a data set uses (folders, links, images) is refused, shown with escapes.
 */
async function readFolder(root: FolderRoot, folder: string): Promise<FolderEntry[]> {
  const entries: FolderEntry[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true, encoding: 'buffer' })) {
    let name: string;
    try {
      name = STRICT_UTF8.decode(entry.name);
    } catch {
      const loose = entry.name.toString('latin1');
      if (isHidden(loose) || !(entry.isDirectory() || entry.isSymbolicLink() || hasImageExtension(loose))) continue;
      const below = idOf(root.path, folder);
      throw inputError(
        `image folder ${root.label}: the name ${below ? `${showUnprintable(below)}/` : ''}${escapedBytes(entry.name)} is not UTF-8, and names here are read as text; rename it (e.g. convmv -f latin1 -t utf8)`,
      );
    }
    entries.push({ name, entry });
  }
  return entries;
}

/** Hidden entries (".ipynb_checkpoints", macOS's "._photo.jpg" resource files) are no classes or images. */
function isHidden(name: string): boolean {
  return name.startsWith('.');
}

function hasImageExtension(name: string): boolean {
  return FOLDER_IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** "a, b, c" and how many more: for messages that name a few of many. */
export function nameSome(names: readonly string[], most = 3): string {
  const shown = names.slice(0, most).map(showUnprintable).join(', ');
  return names.length > most ? `${shown} and ${names.length - most} more` : shown;
}

interface ImageFile {
  /** Below the data set root, with forward slashes. */
  id: string;
  path: string;
  /** The folder below the class folder ("" for the class folder itself), for ImageFolder's order. */
  folder: string;
  name: string;
}

/** The id of a path below the root: forward slashes on every system. */
function idOf(root: string, path: string): string {
  return relative(root, path).split(sep).join('/');
}

/** A path below the root as messages show it: its id, with control characters made visible. */
function shownId(root: FolderRoot, path: string): string {
  return showUnprintable(idOf(root.path, path));
}

/** A data set's folder: as resolved, as the system resolves its links, and as the user named it (for messages). */
interface FolderRoot {
  path: string;
  real: string;
  label: string;
}

interface LinkTarget {
  real: string;
  isDirectory: boolean;
  isFile: boolean;
}

/**
 * Where a symbolic link leads, refused unless the target exists and stays inside the root: a data set
 * is what lies below its folder.
 */
async function followLink(root: FolderRoot, path: string): Promise<LinkTarget> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    if (isFileSystemError(error) && (error.code === 'ENOENT' || error.code === 'ELOOP')) {
      throw inputError(`image folder ${root.label}: ${shownId(root, path)} is a symbolic link to nothing (${error.code}); remove it or fix its target`, error);
    }
    throw error;
  }
  const inside = relative(root.real, real);
  if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    throw inputError(`image folder ${root.label}: ${shownId(root, path)} is a symbolic link to ${showUnprintable(real)}, outside the folder; copy the files in or remove the link`);
  }
  const info = await stat(real);
  return { real, isDirectory: info.isDirectory(), isFile: info.isFile() };
}

/** What walking a class folder found, and what it refuses. */
class FolderWalk {
  readonly images: ImageFile[] = [];
  readonly undecodable: string[] = [];

  constructor(private readonly root: FolderRoot) {}

  /**
   * Every image below `folder`, a class folder or one inside it. `ancestors` holds the real paths of
   * the folders being walked, so that a link back up is refused instead of walked forever.
   */
  async walk(folder: string, below: string, ancestors: ReadonlySet<string>): Promise<void> {
    for (const { name, entry } of await readFolder(this.root, folder)) {
      if (isHidden(name)) continue;
      const path = join(folder, name);
      let isDirectory = entry.isDirectory();
      let isFile = entry.isFile();
      let real = path;
      if (entry.isSymbolicLink()) ({ real, isDirectory, isFile } = await followLink(this.root, path));
      if (isDirectory) {
        if (!entry.isSymbolicLink()) real = await realpath(path);
        if (ancestors.has(real)) {
          throw inputError(`image folder ${this.root.label}: ${shownId(this.root, path)} links back to a folder that contains it; remove the link`);
        }
        await this.walk(path, below ? `${below}/${name}` : name, new Set([...ancestors, real]));
      } else if (hasImageExtension(name)) {
        if (!isFile) {
          throw inputError(`image folder ${this.root.label}: ${shownId(this.root, path)} is not a regular file (a FIFO, socket or device); remove it`);
        }
        if (UNDECODABLE_EXTENSIONS.has(extname(name).toLowerCase())) this.undecodable.push(idOf(this.root.path, path));
        this.images.push({ id: idOf(this.root.path, path), path, folder: below, name });
      }
    }
  }
}

/** ImageFolder's order: os.walk's folders sorted by path, then the file names in each. */
function imageFolderOrder(a: ImageFile, b: ImageFile): number {
  return compareCodePoints(a.folder, b.folder) || compareCodePoints(a.name, b.name);
}

/** The class subfolders of the root, in sorted name order (links to folders inside the root count). */
async function classFolders(root: FolderRoot): Promise<string[]> {
  const names: string[] = [];
  for (const { name, entry } of await readFolder(root, root.path)) {
    if (isHidden(name)) continue;
    if (entry.isDirectory()) names.push(name);
    else if (entry.isSymbolicLink() && (await followLink(root, join(root.path, name))).isDirectory) names.push(name);
  }
  return names.sort(compareCodePoints);
}

/**
 * The ImageNet validation layout the ImageNet-1k names are given in: exactly the 1,000 synset folders,
 * whose sorted order is the names' order.
 */
function checkSynsetFolders(root: string, folders: readonly string[], synsets: readonly string[]): void {
  const expected = new Set(synsets);
  const present = new Set(folders);
  const missing = synsets.filter((synset) => !present.has(synset));
  const unknown = folders.filter((folder) => !expected.has(folder) && /^n\d{8}$/.test(folder));
  const extra = folders.filter((folder) => !expected.has(folder) && !/^n\d{8}$/.test(folder));
  if (missing.length + unknown.length + extra.length === 0) return;
  const problems = [
    missing.length > 0 ? `${missing.length} missing (${nameSome(missing)})` : '',
    unknown.length > 0 ? `${unknown.length} unknown synset${unknown.length === 1 ? '' : 's'} (${nameSome(unknown)})` : '',
    extra.length > 0 ? `${extra.length} extra folder${extra.length === 1 ? '' : 's'} (${nameSome(extra)})` : '',
  ].filter(Boolean);
  throw inputError(
    `image folder ${root}: not the ImageNet validation layout the ImageNet-1k class names need ` +
      `(the ${synsets.length} WordNet synset folders ${synsets[0]} … ${synsets.at(-1)}): ${problems.join(', ')}`,
  );
}

/** Same members, any order: the folder is exactly the 1,000 ImageNet synsets. */
function isImageNetLayout(folders: readonly string[]): boolean {
  if (folders.length !== IMAGENET_SYNSETS.length) return false;
  const synsets = new Set(IMAGENET_SYNSETS);
  return folders.every((folder) => synsets.has(folder));
}

interface ClassChoice {
  names: readonly string[];
  defaultTemplates: string;
}

/** The prompts' class names for the folder's classes: the user's list, ImageNet's, or the folder names. */
function chooseClassNames(root: string, folders: readonly string[], given: ClassNameList | undefined): ClassChoice {
  if (given?.synsets) {
    checkSynsetFolders(root, folders, given.synsets);
    return { names: given.names, defaultTemplates: given.spec === 'imagenet1k' ? 'imagenet' : 'single' };
  }
  if (given) {
    if (given.names.length !== folders.length) {
      throw inputError(
        `image folder ${root}: ${folders.length} class folder${folders.length === 1 ? '' : 's'} but ${given.names.length} class names in ${given.spec}; ` +
          'give one name per class folder, in sorted folder-name order',
      );
    }
    return { names: given.names, defaultTemplates: 'single' };
  }
  if (isImageNetLayout(folders)) return { names: IMAGENET_CLASSNAMES, defaultTemplates: 'imagenet' };
  const names = folders.map(cleanClassName);
  const same = samePromptPair(names);
  if (same !== undefined) {
    const [first, second] = same.map((index) => showUnprintable(folders[index]!));
    throw inputError(
      `image folder ${root}: class folders ${first} and ${second} are one class name to CLIP ("${showUnprintable(names[same[1]]!)}": its tokenizer lowercases, and _ reads as a space); merge or rename one`,
      undefined,
      { hint: { kind: 'giveClassNames' } },
    );
  }
  return { names, defaultTemplates: 'single' };
}

/** Reads a folder's layout: any filesystem failure there is an input error naming the path. */
async function withFolderErrors<T>(root: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    if (isFileSystemError(error)) throw fileSystemError(error, 'image folder', error.path ?? root);
    throw error;
  }
}

/** Opens an image folder: lists every class and image (no image is read until samples are streamed). */
export async function openImageFolder(spec: string, options: DatasetOpenOptions): Promise<Dataset> {
  const given = spec.startsWith(PREFIX) ? spec.slice(PREFIX.length) : spec;
  if (given === '') throw inputError(`data set ${spec}: no folder after "${PREFIX}"; give ${PREFIX}DIR`);
  if (options.split !== undefined) {
    throw usageError(`an image folder has no splits (${given} is evaluated whole); give the folder of the split itself`, { input: { name: 'split', value: options.split } });
  }
  const root = resolve(given);
  return withFolderErrors(root, async () => {
    const info = await stat(root);
    if (!info.isDirectory()) throw inputError(`image folder ${given}: is not a folder; give a folder with one subfolder per class`);
    const folder: FolderRoot = { path: root, real: await realpath(root), label: given };
    const folders = await classFolders(folder);
    if (folders.length === 0) {
      throw inputError(`image folder ${given}: no class subfolders; put each class's images in a subfolder named after the class`);
    }
    // Retrieval opens a folder only to say that it has no captions.
    if (!options.captions && folders.length < MIN_CLASSES) {
      throw inputError(
        `image folder ${given}: only one class folder (${showUnprintable(folders[0]!)}), and zero-shot classification needs at least ${MIN_CLASSES} classes; ` +
          `if ${showUnprintable(folders[0]!)} holds the class folders, give ${showUnprintable(join(given, folders[0]!))}`,
      );
    }
    const classes = chooseClassNames(given, folders, options.classNames);
    if (!options.classNames && classes.names === IMAGENET_CLASSNAMES) {
      options.logger?.info(`image folder ${given}: its class folders are the 1,000 ImageNet-1k synsets; using the ImageNet-1k class names and templates`);
    }
    const samples: Sample[] = [];
    const empty: string[] = [];
    const undecodable: string[] = [];
    for (const [label, classFolder] of folders.entries()) {
      const walk = new FolderWalk(folder);
      const classPath = join(root, classFolder);
      await walk.walk(classPath, '', new Set([folder.real, await realpath(classPath)]));
      if (walk.images.length === 0) empty.push(classFolder);
      undecodable.push(...walk.undecodable);
      for (const image of walk.images.sort(imageFolderOrder)) {
        samples.push({ id: image.id, label, image: { kind: 'file', path: image.path } });
      }
    }
    if (empty.length > 0) {
      throw inputError(
        `image folder ${given}: class folder${empty.length === 1 ? '' : 's'} ${nameSome(empty)} ${empty.length === 1 ? 'has' : 'have'} no images ` +
          '(JPEG, PNG, TIFF, WebP, AVIF or GIF files); add images or remove the folder',
      );
    }
    if (undecodable.length > 0) {
      throw inputError(`image folder ${given}: ${undecodable.length} image${undecodable.length === 1 ? '' : 's'} in BMP, PPM or PGM (${nameSome(undecodable)}), which cannot be decoded here; convert them to PNG`);
    }
    return {
      name: spec,
      split: FOLDER_SPLIT,
      classNames: classes.names,
      defaultTemplates: classes.defaultTemplates,
      size: samples.length,
      async *samples() {
        yield* samples;
      },
    };
  });
}

function isFolder(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

export const folderSource: DatasetSource = {
  title: 'image folder',
  matches: (spec) => spec.startsWith(PREFIX) || isFolder(spec),
  open: openImageFolder,
};
