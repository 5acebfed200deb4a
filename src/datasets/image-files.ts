import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { PLAIN_WORDING, describeError, usageError, word, type Wording } from '../core/errors.js';

/**
 * One image to classify, in output order. `file` is what results name it by: the path as given
 * (folders joined with the names found inside), or "-" for standard input. An input that is known
 * to be unusable before decoding (a folder without images) carries its error instead.
 */
export type ImageInput =
  | { file: string; path: string }
  | { file: string; bytes: Uint8Array }
  | { file: string; error: string };

export interface ExpandOptions {
  /** Descend into subfolders of folder arguments. */
  recursive?: boolean;
  /** Reads all of standard input, for the argument "-". */
  readStdin?: () => Promise<Uint8Array>;
  /** How an input's error names a suggested fix (default: plainly; the CLI names its flags). */
  wording?: Wording;
}

export const STDIN_ARGUMENT = '-';

/** File name endings taken from folders (named files are tried whatever their name). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.webp', '.avif', '.gif', '.tif', '.tiff', '.heic', '.heif',
]);

export function isImageFileName(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** Natural order, so that img2.jpg comes before img10.jpg; the same on every machine. */
const fileNameOrder = new Intl.Collator('en', { numeric: true });

interface FolderListing {
  images: ImageInput[];
  skippedFolders: number;
}

/**
 * The images in a folder, sorted, hidden entries left out. Recursion visits each real folder once,
 * so symbolic links cannot make it loop.
 */
async function listFolder(folder: string, recursive: boolean, visited: Set<string>): Promise<FolderListing> {
  visited.add(await realpath(folder));
  const names = (await readdir(folder)).filter((name) => !name.startsWith('.')).sort(fileNameOrder.compare);
  const images: ImageInput[] = [];
  let skippedFolders = 0;
  for (const name of names) {
    const path = join(folder, name);
    const info = await stat(path).catch(() => undefined);
    if (info?.isDirectory()) {
      if (!recursive) {
        skippedFolders += 1;
      } else if (!visited.has(await realpath(path))) {
        images.push(...(await listFolder(path, true, visited)).images);
      }
    } else if (info?.isFile() && isImageFileName(name)) {
      images.push({ file: path, path });
    }
  }
  return { images, skippedFolders };
}

async function expandFolder(folder: string, recursive: boolean, wording: Wording): Promise<ImageInput[]> {
  let listing: FolderListing;
  try {
    listing = await listFolder(folder, recursive, new Set());
  } catch (error) {
    return [{ file: folder, error: `${folder}: cannot list the folder (${describeError(error)})` }];
  }
  if (listing.images.length > 0) return listing.images;
  const where = recursive ? 'this folder or its subfolders' : 'this folder';
  const detail = `${folder}: no image files (JPEG, PNG, WebP, AVIF, GIF, TIFF, HEIF) in ${where}`;
  const hint = listing.skippedFolders > 0 ? { kind: 'recursive', subfolders: listing.skippedFolders } as const : undefined;
  return [{ file: folder, error: word({ detail, hint }, wording) }];
}

/**
 * Expands FILE, folder and "-" arguments into images, in argument order. A named file is kept even
 * when it does not exist or is no image, so that decoding reports it by name and the rest still run.
 */
export async function expandInputs(args: readonly string[], options: ExpandOptions = {}): Promise<ImageInput[]> {
  if (args.length === 0) throw usageError('no images given; name image files, folders, or - for standard input');
  if (args.filter((arg) => arg === STDIN_ARGUMENT).length > 1) {
    throw usageError('"-" (standard input) is given more than once; it can be read only once');
  }
  const inputs: ImageInput[] = [];
  for (const arg of args) {
    if (arg === STDIN_ARGUMENT) {
      if (!options.readStdin) throw usageError('"-" (standard input) cannot be read here');
      inputs.push({ file: STDIN_ARGUMENT, bytes: await options.readStdin() });
      continue;
    }
    const info = await stat(arg).catch(() => undefined);
    if (info?.isDirectory()) inputs.push(...(await expandFolder(arg, options.recursive ?? false, options.wording ?? PLAIN_WORDING)));
    else inputs.push({ file: arg, path: arg });
  }
  return inputs;
}
