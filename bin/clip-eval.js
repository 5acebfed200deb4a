#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

// A reader that closed stdout (`| head -1`) wants no more output: end at once and quietly, with the
// status a shell gives a command ended by SIGPIPE (128 + 13), never 0 for work that was cut short.
const CLOSED_STDOUT = 141;
process.stdout.on('error', (error) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(CLOSED_STDOUT);
});

process.exitCode = await main(process.argv.slice(2));
