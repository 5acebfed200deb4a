import { readFileSync } from 'node:fs';

/** The tool's version, from the package.json three levels above the compiled file (dist/src/core). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
