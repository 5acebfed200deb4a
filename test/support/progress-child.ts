import { writeFileSync } from 'node:fs';
import { createProgress } from '../../src/core/progress.js';

/**
 * A process that draws a progress bar on its terminal (run it under a pseudo-terminal):
 * `progress-child.js PIDFILE forever` keeps drawing until a signal ends it, after writing its pid to
 * PIDFILE once the bar is on screen; `progress-child.js PIDFILE finish` draws a while, stops the bar and exits 0.
 */
const [pidFile, mode] = process.argv.slice(2);
const total = 100_000;
const progress = createProgress({ label: 'cifar100 fp32', total, unit: 'images' });
let done = 0;
const timer = setInterval(() => {
  done += 1_234;
  progress.update(done, 'top-1 99.12 %');
  if (done === 1_234 * 3) writeFileSync(pidFile!, String(process.pid));
  if (mode === 'finish' && done >= 1_234 * 20) {
    clearInterval(timer);
    progress.stop();
  }
}, 30);
