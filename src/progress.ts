import cliProgress from 'cli-progress';

/**
 * One progress reporter for downloads and encoding loops: a cli-progress bar on an interactive
 * terminal, plain periodic lines in logs and CI (where redraws would be noise), nothing when quiet.
 */
export interface Progress {
  /** Sets the amount done so far and optional extra text (for example a running accuracy). */
  update(done: number, detail?: string): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  unit: 'bytes' | 'images' | 'prompts';
  quiet?: boolean;
  stream?: NodeJS.WriteStream;
  /** Seconds between plain lines; default 5. */
  interval?: number;
}

export function isInteractive(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.quiet) return { update() {}, stop() {} };
  return isInteractive(stream) ? barProgress(options, stream) : lineProgress(options, stream);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function formatAmount(value: number, unit: ProgressOptions['unit']): string {
  return unit === 'bytes' ? formatBytes(value) : `${Math.round(value)}`;
}

function formatRate(perSecond: number, unit: ProgressOptions['unit']): string {
  return unit === 'bytes' ? `${formatBytes(perSecond)}/s` : `${perSecond.toFixed(1)} ${unit}/s`;
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function barProgress(options: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  const start = performance.now();
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${options.label} [{bar}] {percentage}% {amount} {rate} ETA {eta_text} {detail}`,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const payload = (done: number, detail = '') => {
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    return {
      amount: `${formatAmount(done, options.unit)}/${formatAmount(options.total, options.unit)}`,
      rate: formatRate(rate, options.unit),
      eta_text: formatEta(rate > 0 ? (options.total - done) / rate : Infinity),
      detail,
    };
  };
  bar.start(Math.max(options.total, 1), 0, payload(0));
  return {
    update(done, detail) {
      bar.update(done, payload(done, detail));
    },
    stop() {
      bar.stop();
    },
  };
}

function lineProgress(options: ProgressOptions, stream: NodeJS.WritableStream): Progress {
  const start = performance.now();
  const intervalMs = (options.interval ?? 5) * 1000;
  let lastLine = start;
  let last = { done: 0, detail: '' };
  let printedFinal = false;
  const print = () => {
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? last.done / seconds : 0;
    const percent = options.total > 0 ? Math.floor((100 * last.done) / options.total) : 100;
    const eta = rate > 0 ? (options.total - last.done) / rate : Infinity;
    const detail = last.detail ? ` ${last.detail}` : '';
    stream.write(
      `${options.label}: ${percent}% ${formatAmount(last.done, options.unit)}/${formatAmount(options.total, options.unit)} ` +
        `${formatRate(rate, options.unit)} ETA ${formatEta(eta)}${detail}\n`,
    );
  };
  return {
    update(done, detail = '') {
      last = { done, detail };
      const now = performance.now();
      if (now - lastLine >= intervalMs) {
        lastLine = now;
        print();
      }
    },
    stop() {
      if (!printedFinal && last.done > 0) print();
      printedFinal = true;
    },
  };
}
