/**
 * The bench's result document and its table: what was measured, against which peer figure, and
 * whether each of issue #7's targets was met.
 */

/** The figures the targets compare, for clip-eval and for the peer alike. */
export interface StageFigures {
  preprocessImagesPerSecond: number;
  imageEncodeImagesPerSecond: number;
  coldImagesPerSecond: number;
  /** clip-eval: a run with cached text embeddings; the peer: its run without the text encoder's time. */
  warmImagesPerSecond: number;
  peakRssBytes?: number;
}

/** One of issue #7's targets: the figure held to the bound, and whether it was met (undefined: no peer figure). */
export interface Target {
  name: string;
  /** Our figure (images/s, or bytes for peak RSS) and the peer's. */
  ours: number;
  peer?: number;
  /** 'peer-ratio': ours ÷ peer; 'own-ratio': a ratio of two of our figures; 'bytes': ours as it is. */
  measure: 'peer-ratio' | 'own-ratio' | 'bytes';
  value?: number;
  bound: number;
  kind: 'at-least' | 'at-most';
  met?: boolean;
}

export const PEAK_RSS_LIMIT_BYTES = 1e9;
export const MIN_PEER_TOP1_AGREEMENT = 0.99;

function peerRatio(name: string, ours: number, peer: number | undefined, bound: number): Target {
  const value = peer !== undefined && peer > 0 ? ours / peer : undefined;
  return {
    name,
    ours,
    ...(peer !== undefined ? { peer } : {}),
    measure: 'peer-ratio',
    ...(value !== undefined ? { value, met: value >= bound } : {}),
    bound,
    kind: 'at-least',
  };
}

/** Issue #7's targets; ratios to the peer stay open (met undefined) when the peer did not run. */
export function evaluateTargets(ours: StageFigures, peer: StageFigures | undefined): Target[] {
  const warmShare = ours.warmImagesPerSecond / ours.imageEncodeImagesPerSecond;
  const targets: Target[] = [
    peerRatio('image encoding', ours.imageEncodeImagesPerSecond, peer?.imageEncodeImagesPerSecond, 1.5),
    peerRatio('end to end, cold', ours.coldImagesPerSecond, peer?.coldImagesPerSecond, 2.0),
    peerRatio('end to end, warm', ours.warmImagesPerSecond, peer?.warmImagesPerSecond, 1.6),
    { name: 'warm / image encoding', ours: ours.warmImagesPerSecond, measure: 'own-ratio', value: warmShare, bound: 0.9, kind: 'at-least', met: warmShare >= 0.9 },
    peerRatio('preprocessing, 1 core', ours.preprocessImagesPerSecond, peer?.preprocessImagesPerSecond, 3.0),
  ];
  if (ours.peakRssBytes !== undefined) {
    targets.push({
      name: 'peak RSS',
      ours: ours.peakRssBytes,
      ...(peer?.peakRssBytes !== undefined ? { peer: peer.peakRssBytes } : {}),
      measure: 'bytes',
      value: ours.peakRssBytes,
      bound: PEAK_RSS_LIMIT_BYTES,
      kind: 'at-most',
      met: ours.peakRssBytes <= PEAK_RSS_LIMIT_BYTES,
    });
  }
  return targets;
}

export interface TableRow {
  stage: string;
  ours: string;
  peer?: string;
  ratio?: string;
  target?: string;
  met?: boolean;
}

export function formatRate(value: number, unit: string): string {
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${unit}`;
}

export function formatMegabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`;
}

/** A target as table cells: the ratio (ours ÷ peer, or our own share) and the bound it is held to. */
export function targetCells(target: Target): Pick<TableRow, 'ratio' | 'target' | 'met'> {
  const sign = target.kind === 'at-least' ? '≥' : '≤';
  const met = target.met !== undefined ? { met: target.met } : {};
  switch (target.measure) {
    case 'bytes': {
      const ratio = target.peer !== undefined ? { ratio: `${(target.ours / target.peer).toFixed(2)}×` } : {};
      return { ...ratio, target: `${sign} ${formatMegabytes(target.bound)}`, ...met };
    }
    case 'own-ratio':
      return { ...(target.value !== undefined ? { ratio: target.value.toFixed(2) } : {}), target: `${sign} ${target.bound.toFixed(2)}`, ...met };
    case 'peer-ratio':
      return { ...(target.value !== undefined ? { ratio: `${target.value.toFixed(2)}×` } : {}), target: `${sign} ${target.bound.toFixed(1)}×`, ...met };
  }
}

/** Fixed-width columns; the ratio column is ours ÷ peer (or, for the warm share, warm ÷ image encoding). */
export function formatTable(title: string, rows: TableRow[]): string {
  const header: TableRow = { stage: 'stage', ours: 'clip-eval', peer: 'peer', ratio: 'ratio', target: 'target' };
  const cells = (row: TableRow) => [row.stage, row.ours, row.peer ?? '', row.ratio ?? '', row.target ?? '', row === header ? 'met' : row.met === undefined ? '' : row.met ? 'yes' : 'NO'];
  const all = [header, ...rows].map(cells);
  const widths = all[0]!.map((_, column) => Math.max(...all.map((line) => line[column]!.length)));
  const lines = all.map((line) => line.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd());
  return [title, ...lines].join('\n') + '\n';
}
