import { stat } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { readTextFile } from '../core/bounded-read.js';
import { inputError, isFileSystemError } from '../core/errors.js';
import { showUnprintable } from '../core/unprintable.js';
import { cleanClassName } from './cifar/class-names.js';
import { MIN_CLASSES, samePromptPair, type ClassNameList } from './class-names.js';
import type { Dataset, DatasetOpenOptions, DatasetSource, Sample } from './dataset.js';
import { compareCodePoints } from './folder.js';

/**
 * CSV manifests: the header `path,label`, then one row per image. Paths are relative to the manifest's
 * folder; a label is a class name or a 0-based index into the given class names. Every file is checked
 * when the manifest is opened, so that a wrong row stops the run before it starts, not in the middle.
 */

const PREFIX = 'csv:';

/** 2.5 million rows of 100 bytes; ImageNet's training set as a manifest is about 60 MiB. */
const MAX_MANIFEST_BYTES = 256 * 2 ** 20;

/** Files checked at a time when the manifest is opened. */
const STAT_CONCURRENCY = 64;

export interface CsvRecord {
  /** The line the record starts on, 1-based. */
  line: number;
  fields: string[];
}

/**
 * RFC 4180 records: fields separated by commas, records by LF or CRLF, a field in double quotes may
 * hold commas, line breaks and "" for a quote. Empty lines are skipped. Strict where spreadsheets are
 * lenient: a quote inside an unquoted field, text after a closing quote or an unclosed quote is an
 * error naming `label` and the line.
 */
export function parseCsv(text: string, label: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let line = 1;
  let at = 0;
  while (at < text.length) {
    if (text[at] === '\n' || text[at] === '\r') {
      at += text.startsWith('\r\n', at) ? 2 : 1;
      line += 1;
      continue;
    }
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let field = '';
      if (text[at] === '"') {
        at += 1;
        for (;;) {
          const quote = text.indexOf('"', at);
          if (quote === -1) throw inputError(`${label} line ${start}: a quoted field is not closed; end it with "`);
          const chunk = text.slice(at, quote);
          for (const char of chunk) if (char === '\n') line += 1;
          field += chunk;
          at = quote + 1;
          if (text[at] !== '"') break;
          field += '"';
          at += 1;
        }
        if (at < text.length && text[at] !== ',' && text[at] !== '\n' && text[at] !== '\r') {
          throw inputError(`${label} line ${line}: text after a closing quote; quote the whole field and write a quote inside it as ""`);
        }
      } else {
        let end = at;
        while (end < text.length && text[end] !== ',' && text[end] !== '\n' && text[end] !== '\r') end += 1;
        field = text.slice(at, end);
        if (field.includes('"')) throw inputError(`${label} line ${line}: a quote inside an unquoted field; quote the whole field and write a quote inside it as ""`);
        at = end;
      }
      fields.push(field);
      if (text[at] === ',') {
        at += 1;
        continue;
      }
      break;
    }
    at += text.startsWith('\r\n', at) ? 2 : 1;
    line += 1;
    records.push({ line: start, fields });
  }
  return records;
}

interface Row {
  line: number;
  path: string;
  label: string;
}

/**
 * A row's path, refused when empty or holding a control character (a NUL, a line break): no image
 * file is named so on purpose, and the system calls would refuse a NUL as a bug, not as a file.
 */
function checkRowPath(label: string, line: number, path: string): void {
  if (path === '') throw inputError(`${label} line ${line}: the path is empty`);
  if (/[\x00-\x1f\x7f]/.test(path)) throw inputError(`${label} line ${line}: the path ${showUnprintable(path)} holds a control character; fix the row`);
}

/** A label that is a whole number is an index into the class names. */
function isIndex(label: string): boolean {
  return /^\d+$/.test(label);
}

/**
 * The class names and each row's label index. Given names: labels are names among them or indices
 * below their count. Otherwise the distinct label names, sorted as image folders' are, with `_` shown
 * as spaces; indices then have no names to refer to.
 */
function resolveLabels(label: string, rows: readonly Row[], given: ClassNameList | undefined): { names: readonly string[]; labels: number[] } {
  if (given) {
    const indicesOf = new Map<string, number[]>();
    given.names.forEach((name, index) => indicesOf.set(name, [...(indicesOf.get(name) ?? []), index]));
    const labels = rows.map((row) => {
      if (isIndex(row.label)) {
        const index = Number(row.label);
        if (index >= given.names.length) {
          throw inputError(`${label} line ${row.line}: label ${row.label} is out of range (${given.names.length} class names, indices 0 to ${given.names.length - 1})`);
        }
        return index;
      }
      const indices = indicesOf.get(row.label);
      if (!indices) throw inputError(`${label} line ${row.line}: label "${showUnprintable(row.label)}" is not one of the ${given.names.length} class names in ${given.spec}`);
      if (indices.length > 1) {
        throw inputError(`${label} line ${row.line}: label "${showUnprintable(row.label)}" names ${indices.length} classes in ${given.spec} (indices ${indices.join(', ')}); write the index instead`);
      }
      return indices[0]!;
    });
    return { names: given.names, labels };
  }
  const numeric = rows.find((row) => isIndex(row.label));
  if (numeric) {
    throw inputError(`${label} line ${numeric.line}: label ${numeric.label} is an index, but no class names are given to index`, undefined, { hint: { kind: 'giveClassNames' } });
  }
  const distinct = [...new Set(rows.map((row) => row.label))].sort(compareCodePoints);
  const names = distinct.map(cleanClassName);
  const same = samePromptPair(names);
  if (same !== undefined) {
    const [first, second] = same.map((index) => rows.find((row) => row.label === distinct[index])!);
    throw inputError(
      `${label}: labels "${showUnprintable(first!.label)}" (line ${first!.line}) and "${showUnprintable(second!.label)}" (line ${second!.line}) are one class name to CLIP ` +
        `("${showUnprintable(names[same[1]]!)}": its tokenizer lowercases, and _ reads as a space); write one of them`,
    );
  }
  const indexOf = new Map(distinct.map((name, index) => [name, index]));
  return { names, labels: rows.map((row) => indexOf.get(row.label)!) };
}

/** Each row's file must be there and be a regular file; the first row (in line order) that is not is the error. */
async function checkFiles(label: string, rows: readonly Row[], paths: readonly string[]): Promise<void> {
  for (let start = 0; start < rows.length; start += STAT_CONCURRENCY) {
    const problems = await Promise.all(
      paths.slice(start, start + STAT_CONCURRENCY).map(async (path) => {
        try {
          const info = await stat(path);
          return info.isFile() ? undefined : info.isDirectory() ? 'is a folder, not an image file' : 'is not a regular file (a FIFO, socket or device)';
        } catch (error) {
          if (!isFileSystemError(error)) throw error;
          if (error.code === 'ENOENT') return 'does not exist';
          if (error.code === 'ENOTDIR') return 'does not exist (a part of the path is a file)';
          return `cannot be read (${error.code})`;
        }
      }),
    );
    const first = problems.findIndex((problem) => problem !== undefined);
    if (first !== -1) {
      const row = rows[start + first]!;
      throw inputError(`${label} line ${row.line}: ${showUnprintable(row.path)} ${problems[first]} (${showUnprintable(paths[start + first]!)}); fix the row or the file`);
    }
  }
}

/** Opens a CSV manifest: reads and checks every row and file (no image is read until samples are streamed). */
export async function openCsvManifest(spec: string, options: DatasetOpenOptions): Promise<Dataset> {
  const file = spec.startsWith(PREFIX) ? spec.slice(PREFIX.length) : spec;
  if (file === '') throw inputError(`data set ${spec}: no file after "${PREFIX}"; give ${PREFIX}FILE`);
  const label = `manifest ${file}`;
  const text = await readTextFile(file, label, 'give a CSV file with the header path,label', MAX_MANIFEST_BYTES);
  const [header, ...records] = parseCsv(text, label);
  if (header?.fields.length === 2 && header.fields[0] === 'path' && header.fields[1] === 'caption') return openCaptionManifest(spec, file, label, records);
  if (options.captions) throw inputError(`${label} line 1: the header must be exactly path,caption (one row per caption) for a data set of captions`);
  if (!header || header.fields.length !== 2 || header.fields[0] !== 'path' || header.fields[1] !== 'label') {
    throw inputError(`${label} line 1: the header must be exactly path,label (or path,caption for captions)`);
  }
  if (records.length === 0) throw inputError(`${label}: no rows after the header; add one row path,label per image`);
  const firstLine = new Map<string, number>();
  const rows = records.map(({ line, fields }): Row => {
    if (fields.length !== 2) throw inputError(`${label} line ${line}: ${fields.length} fields, expected 2 (path,label); quote a field that holds a comma`);
    const [path, rowLabel] = fields as [string, string];
    checkRowPath(label, line, path);
    if (rowLabel === '') throw inputError(`${label} line ${line}: the label is empty`);
    const earlier = firstLine.get(path);
    if (earlier !== undefined) throw inputError(`${label} line ${line}: ${showUnprintable(path)} is listed again (first on line ${earlier}); list each image once`);
    firstLine.set(path, line);
    return { line, path, label: rowLabel };
  });
  const classes = resolveLabels(label, rows, options.classNames);
  // Retrieval opens a label manifest only to say that it has no captions.
  if (!options.captions && classes.names.length < MIN_CLASSES) {
    throw inputError(`${label}: every row has the label "${showUnprintable(rows[0]!.label)}", and zero-shot classification needs at least ${MIN_CLASSES} classes`, undefined, { hint: { kind: 'giveClassNames' } });
  }
  const folder = dirname(resolve(file));
  const paths = rows.map((row) => resolve(folder, row.path));
  await checkFiles(label, rows, paths);
  const samples: Sample[] = rows.map((row, index) => ({ id: row.path, label: classes.labels[index]!, image: { kind: 'file', path: paths[index]! } }));
  return {
    name: spec,
    split: basename(file, extname(file)),
    classNames: classes.names,
    defaultTemplates: options.classNames?.spec === 'imagenet1k' ? 'imagenet' : 'single',
    size: samples.length,
    async *samples() {
      yield* samples;
    },
  };
}

/**
 * A caption manifest (header `path,caption`): one row per caption, several rows may name one image;
 * the images in the order of their first row, each with its captions in row order. No class names.
 */
async function openCaptionManifest(spec: string, file: string, label: string, records: readonly CsvRecord[]): Promise<Dataset> {
  if (records.length === 0) throw inputError(`${label}: no rows after the header; add one row path,caption per caption`);
  const captionsOf = new Map<string, { line: number; captions: string[] }>();
  for (const { line, fields } of records) {
    if (fields.length !== 2) throw inputError(`${label} line ${line}: ${fields.length} fields, expected 2 (path,caption); quote a field that holds a comma`);
    const [path, caption] = fields as [string, string];
    checkRowPath(label, line, path);
    if (caption.trim() === '') throw inputError(`${label} line ${line}: the caption is empty`);
    const entry = captionsOf.get(path);
    if (entry) entry.captions.push(caption);
    else captionsOf.set(path, { line, captions: [caption] });
  }
  const rows: Row[] = [...captionsOf].map(([path, { line }]) => ({ line, path, label: '' }));
  const folder = dirname(resolve(file));
  const paths = rows.map((row) => resolve(folder, row.path));
  await checkFiles(label, rows, paths);
  const samples: Sample[] = rows.map((row, index) => ({ id: row.path, label: 0, image: { kind: 'file', path: paths[index]! }, captions: captionsOf.get(row.path)!.captions }));
  return {
    name: spec,
    split: basename(file, extname(file)),
    classNames: [],
    defaultTemplates: 'single',
    size: samples.length,
    async *samples() {
      yield* samples;
    },
  };
}

export const csvSource: DatasetSource = {
  title: 'CSV manifest',
  // A folder named like a manifest is still a folder when asked for as one.
  matches: (spec) => spec.startsWith(PREFIX) || (/\.csv$/i.test(spec) && !spec.startsWith('folder:')),
  open: openCsvManifest,
};
