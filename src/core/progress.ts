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
  /** Undefined while unknown (a stream of unknown length): the line then shows the count and rate only. */
  total: number | undefined;
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

/** "done/total", or just "done" while the total is unknown. */
function formatDone(done: number, total: number | undefined, unit: ProgressOptions['unit']): string {
  return total === undefined ? formatAmount(done, unit) : `${formatAmount(done, unit)}/${formatAmount(total, unit)}`;
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** The parts of one bar line; the bar itself is drawn to fit the terminal. */
export interface BarLine {
  label: string;
  /** Done, in [0, 1]; undefined while the total is unknown (no percentage, no ETA). */
  fraction: number | undefined;
  amount: string;
  rate: string;
  eta: string;
  detail: string;
}

const WIDEST_BAR = 40;
const NARROWEST_BAR = 5;

/**
 * One bar line that fits `columns` (one column spare, so the terminal never wraps): the bar shrinks
 * first, then the detail goes, then the bar, then the label is cut; the figures (percentage, amount,
 * rate, ETA) stay.
 */
export function formatBarLine(line: BarLine, columns: number): string {
  const fraction = line.fraction === undefined ? 0 : Math.min(Math.max(line.fraction, 0), 1);
  const figures =
    line.fraction === undefined ? `${line.amount} ${line.rate}` : `${Math.floor(100 * fraction)}% ${line.amount} ${line.rate} ETA ${line.eta}`;
  const room = columns - 1;
  const draw = (width: number) => {
    const done = Math.round(fraction * width);
    return `[${'\u2588'.repeat(done)}${'\u2591'.repeat(width - done)}]`;
  };
  for (const detail of line.detail ? [` ${line.detail}`, ''] : ['']) {
    const width = Math.min(WIDEST_BAR, room - `${line.label}  ${figures}${detail}`.length - 2);
    if (line.fraction === undefined) {
      if (`${line.label} ${figures}${detail}`.length <= room) return `${line.label} ${figures}${detail}`;
      continue;
    }
    if (width >= NARROWEST_BAR) return `${line.label} ${draw(width)} ${figures}${detail}`;
  }
  const labelRoom = room - figures.length - 1;
  if (line.label.length <= labelRoom) return `${line.label} ${figures}`;
  return labelRoom >= 2 ? `${line.label.slice(0, labelRoom - 1)}… ${figures}` : figures;
}

/** Bars on screen now: a signal or an exit while one is drawn must give the terminal its cursor back. */
const activeBars = new Map<cliProgress.SingleBar, NodeJS.WriteStream>();
const SHOW_CURSOR_AND_WRAP = '\x1b[?25h\x1b[?7h';

function onTerminatingSignal(signal: NodeJS.Signals): void {
  for (const bar of activeBars.keys()) bar.stop();
  activeBars.clear();
  removeSignalHandlers();
  // With no other handler left, raise it again: the default action ends the process by the signal,
  // so a shell sees 130 (SIGINT) or 143 (SIGTERM) as for any interrupted command.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function onExit(): void {
  for (const stream of activeBars.values()) stream.write(SHOW_CURSOR_AND_WRAP);
}

function addSignalHandlers(): void {
  if (activeBars.size > 0) return;
  process.on('SIGINT', onTerminatingSignal);
  process.on('SIGTERM', onTerminatingSignal);
  process.on('exit', onExit);
}

function removeSignalHandlers(): void {
  process.removeListener('SIGINT', onTerminatingSignal);
  process.removeListener('SIGTERM', onTerminatingSignal);
  process.removeListener('exit', onExit);
}

function barProgress(options: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  const start = performance.now();
  const bar = new cliProgress.SingleBar({
    stream,
    format: (_options, params, payload: Omit<BarLine, 'label' | 'fraction'>) =>
      formatBarLine({ label: options.label, fraction: options.total === undefined ? undefined : params.progress, ...payload }, params.maxWidth),
    hideCursor: true,
    clearOnComplete: false,
    etaBuffer: 50,
  });
  const payload = (done: number, detail = ''): Omit<BarLine, 'label' | 'fraction'> => {
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    return {
      amount: formatDone(done, options.total, options.unit),
      rate: formatRate(rate, options.unit),
      eta: formatEta(rate > 0 && options.total !== undefined ? (options.total - done) / rate : Infinity),
      detail,
    };
  };
  addSignalHandlers();
  activeBars.set(bar, stream);
  bar.start(Math.max(options.total ?? 1, 1), 0, payload(0));
  return {
    update(done, detail) {
      bar.update(done, payload(done, detail));
    },
    stop() {
      bar.stop();
      activeBars.delete(bar);
      if (activeBars.size === 0) removeSignalHandlers();
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
    const detail = last.detail ? ` ${last.detail}` : '';
    const done = formatDone(last.done, options.total, options.unit);
    if (options.total === undefined) {
      stream.write(`${options.label}: ${done} ${formatRate(rate, options.unit)}${detail}\n`);
      return;
    }
    const percent = options.total > 0 ? Math.floor((100 * last.done) / options.total) : 100;
    const eta = rate > 0 ? (options.total - last.done) / rate : Infinity;
    stream.write(`${options.label}: ${percent}% ${done} ${formatRate(rate, options.unit)} ETA ${formatEta(eta)}${detail}\n`);
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
