import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { EXIT, usageError } from '../core/errors.js';
import { formatBytes } from '../core/progress.js';
import { showUnprintable } from '../core/unprintable.js';
import { CACHE_ENTRY_KINDS, RECOMPUTED_KINDS, listCache, pruneCache, type CacheEntry, type CacheEntryKind, type CacheInventory, type PruneResult } from '../tasks/cache/cache-entries.js';
import { addCacheDirOption } from './flags.js';
import { byteSize, durationMs } from './options.js';

interface ListOptions {
  cacheDir?: string;
  json?: boolean;
  verbose?: boolean;
}

interface PruneOptions extends ListOptions {
  olderThan?: number;
  maxSize?: number;
  dryRun?: boolean;
}

const KIND_NAMES: Record<CacheEntryKind, { one: string; many: string }> = {
  dataset: { one: 'data set', many: 'data sets' },
  model: { one: 'model', many: 'models' },
  textEmbedding: { one: 'text embedding', many: 'text embeddings' },
  imageEmbedding: { one: 'image embedding', many: 'image embeddings' },
  fileDigest: { one: 'file digest', many: 'file digests' },
};

/** How long ago, for people: "just now", "5 min ago", "3 h ago", "12 d ago". */
function ago(ms: number, now: number): string {
  const minutes = Math.floor((now - ms) / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 120) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.floor(hours / 24)} d ago`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function entryJson(entry: CacheEntry) {
  return { path: entry.path, kind: entry.kind, bytes: entry.bytes, lastUse: iso(entry.lastUseMs) };
}

function summary(entries: readonly CacheEntry[]) {
  return CACHE_ENTRY_KINDS.map((kind) => {
    const ofKind = entries.filter((entry) => entry.kind === kind);
    const lastUseMs = ofKind.length === 0 ? undefined : Math.max(...ofKind.map((entry) => entry.lastUseMs));
    return { kind, entries: ofKind.length, bytes: ofKind.reduce((sum, entry) => sum + entry.bytes, 0), lastUseMs };
  });
}

function formatList(inventory: CacheInventory, verbose: boolean, now: number): string {
  const rows = summary(inventory.entries);
  const lines = [`cache folder: ${showUnprintable(inventory.root)}`, '', `${'kind'.padEnd(18)}${'entries'.padStart(8)}${'size'.padStart(11)}  last use`];
  for (const row of rows) {
    lines.push(`${KIND_NAMES[row.kind].many.padEnd(18)}${String(row.entries).padStart(8)}${formatBytes(row.bytes).padStart(11)}  ${row.lastUseMs === undefined ? '-' : ago(row.lastUseMs, now)}`);
  }
  const total = rows.reduce((sum, row) => sum + row.bytes, 0);
  lines.push(`${'total'.padEnd(18)}${String(inventory.entries.length).padStart(8)}${formatBytes(total).padStart(11)}`);
  if (verbose && inventory.entries.length > 0) {
    lines.push('');
    for (const entry of inventory.entries) {
      lines.push(`${KIND_NAMES[entry.kind].one.padEnd(16)}${formatBytes(entry.bytes).padStart(10)}  ${iso(entry.lastUseMs)}  ${showUnprintable(entry.path)}`);
    }
  }
  if (verbose) for (const skip of inventory.skipped) lines.push(`skipped ${showUnprintable(skip.path)}: ${skip.reason}`);
  return `${lines.join('\n')}\n`;
}

function listJson(inventory: CacheInventory): string {
  const kinds = summary(inventory.entries).map(({ lastUseMs, ...row }) => ({ ...row, lastUse: lastUseMs === undefined ? null : iso(lastUseMs) }));
  const total = { entries: inventory.entries.length, bytes: kinds.reduce((sum, row) => sum + row.bytes, 0) };
  return `${JSON.stringify({ root: inventory.root, kinds, total, entries: inventory.entries.map(entryJson), skipped: inventory.skipped }, null, 2)}\n`;
}

function formatPrune(result: PruneResult, options: { dryRun: boolean; verbose: boolean; maxBytes?: number }, now: number): string {
  const { dryRun, verbose, maxBytes } = options;
  const lines = [`cache folder: ${showUnprintable(result.root)}`];
  const describe = (entry: CacheEntry) => `${showUnprintable(entry.path)} (${KIND_NAMES[entry.kind].one}, ${formatBytes(entry.bytes)}, last used ${ago(entry.lastUseMs, now)})`;
  const verb = dryRun ? 'would remove' : 'removed';
  // Embeddings and digest memos come by the thousand: one line per kind unless --verbose.
  const byKind = (entry: CacheEntry) => !verbose && RECOMPUTED_KINDS.has(entry.kind);
  for (const entry of result.removed.filter((each) => !byKind(each))) lines.push(`${verb} ${describe(entry)}`);
  for (const row of summary(result.removed.filter(byKind))) {
    if (row.entries > 0) lines.push(`${verb} ${row.entries} ${row.entries === 1 ? KIND_NAMES[row.kind].one : KIND_NAMES[row.kind].many} (${formatBytes(row.bytes)}, last used ${ago(row.lastUseMs!, now)} or earlier)`);
  }
  for (const entry of result.kept) lines.push(`kept ${describe(entry)}: ${showUnprintable(entry.reason)}`);
  if (result.temporaries.length > 0) {
    const bytes = result.temporaries.reduce((sum, file) => sum + file.bytes, 0);
    const count = `${result.temporaries.length} stale ${result.temporaries.length === 1 ? 'temporary file' : 'temporary files'}`;
    lines.push(`${verb} ${count} of interrupted writers (${formatBytes(bytes)})`);
  }
  if (verbose) for (const skip of result.skipped) lines.push(`skipped ${showUnprintable(skip.path)}: ${skip.reason}`);
  const freed = result.freedBytes + result.temporaries.reduce((sum, file) => sum + file.bytes, 0);
  // Entries in use (kept above, with why) can leave the cache larger than asked.
  const over = maxBytes !== undefined && result.remaining.bytes > maxBytes ? `, more than --max-size ${formatBytes(maxBytes)}: what was kept is in use` : '';
  const left = `${result.remaining.entries} ${result.remaining.entries === 1 ? 'entry' : 'entries'}, ${formatBytes(result.remaining.bytes)}${over}`;
  lines.push(dryRun ? `would free ${formatBytes(freed)}; the cache would hold ${left}` : `freed ${formatBytes(freed)}; the cache holds ${left}`);
  return `${lines.join('\n')}\n`;
}

function pruneJson(result: PruneResult, dryRun: boolean): string {
  return `${JSON.stringify(
    {
      root: result.root,
      dryRun,
      removed: result.removed.map(entryJson),
      kept: result.kept.map((entry) => ({ ...entryJson(entry), reason: entry.reason })),
      temporaries: result.temporaries.map((file) => ({ path: file.path, bytes: file.bytes })),
      freedBytes: result.freedBytes + result.temporaries.reduce((sum, file) => sum + file.bytes, 0),
      remaining: result.remaining,
      skipped: result.skipped,
    },
    null,
    2,
  )}\n`;
}

function addOutputOptions(command: Command, json: string): Command {
  return addCacheDirOption(command).option('--json', json).option('-v, --verbose', 'also list every entry, and what was skipped (links are never followed)');
}

export function cacheCommand(setExit: (code: number) => void): Command {
  const list = addOutputOptions(
    new Command('list').description('list what the cache holds: data sets, models, text and image embeddings, file digests, with sizes and last use (the default)'),
    'print JSON: the cache folder, each kind\'s entries, size and last use, and every entry',
  ).action(async (options: ListOptions) => {
    const inventory = await listCache(resolveCacheRoot(options.cacheDir));
    process.stdout.write(options.json ? listJson(inventory) : formatList(inventory, options.verbose ?? false, Date.now()));
    setExit(EXIT.ok);
  });

  const prune = addOutputOptions(
    new Command('prune')
      .description('remove cache entries last used long ago, or the least recently used until the cache fits a size; safe while other runs use the cache')
      .option('--older-than <duration>', 'remove entries last used longer ago than this: 30d, 12h, 90m, 45s, 2w', durationMs('--older-than'))
      .option('--max-size <size>', 'then remove the least recently used entries until the cache holds at most this: 5GB, 500MB, 1GiB', byteSize('--max-size'))
      .option('--dry-run', 'only say what would be removed'),
    'print JSON: what was removed and kept (with why), the space freed and what remains',
  ).action(async (options: PruneOptions) => {
    if (options.olderThan === undefined && options.maxSize === undefined) throw usageError('cache prune: give --older-than and/or --max-size, e.g. --older-than 30d');
    const dryRun = options.dryRun ?? false;
    const now = Date.now();
    const result = await pruneCache(resolveCacheRoot(options.cacheDir), { olderThanMs: options.olderThan, maxBytes: options.maxSize, dryRun, now });
    process.stdout.write(options.json ? pruneJson(result, dryRun) : formatPrune(result, { dryRun, verbose: options.verbose ?? false, maxBytes: options.maxSize }, now));
    setExit(EXIT.ok);
  });

  return new Command('cache')
    .description('list what the cache holds (cache list, the default) or remove entries (cache prune)')
    .addCommand(list, { isDefault: true })
    .addCommand(prune);
}
