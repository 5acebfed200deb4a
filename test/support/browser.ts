import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from './paths.js';

/**
 * Headless Chromium for the report tests: Debian's `chromium` package (no browser download), driven
 * by playwright-core. CLIP_EVAL_CHROMIUM names another binary.
 */
export const chromiumPath = process.env.CLIP_EVAL_CHROMIUM ?? '/usr/bin/chromium';

/** The reason to skip a browser test, or false when the browser is there. */
export function needsChromium(): string | false {
  return existsSync(chromiumPath) ? false : `needs Chromium at ${chromiumPath}: install Debian's chromium package (apt-get install chromium), or set CLIP_EVAL_CHROMIUM; skipped`;
}

/** Where the tests leave what a person may want to look at (screenshots); ignored by git. */
export const artifactsDir = join(repoRoot, 'test-artifacts');

export async function artifactPath(name: string): Promise<string> {
  await mkdir(artifactsDir, { recursive: true });
  return join(artifactsDir, name);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // Without the background-networking flags Chromium tries (and is refused) connections of its own.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface OpenedPage {
  page: Page;
  url: string;
  /** Console errors and uncaught exceptions, in order. */
  problems: string[];
  /** Every request the page made (the file itself included). */
  requests: string[];
  /** Dialogs (alert, confirm) the page opened: an injected script would. */
  dialogs: string[];
  /** From navigation to the load event, in milliseconds. */
  loadMs: number;
  close(): Promise<void>;
}

/** Opens a file in a fresh context, recording problems and requests; any request off the file is refused. */
export async function openFile(browser: Browser, path: string, options: { colorScheme?: 'light' | 'dark'; width?: number; height?: number } = {}): Promise<OpenedPage> {
  const context = await browser.newContext({ colorScheme: options.colorScheme ?? 'light', viewport: { width: options.width ?? 1280, height: options.height ?? 900 } });
  const page = await context.newPage();
  const url = pathToFileURL(path).href;
  const problems: string[] = [];
  const requests: string[] = [];
  const dialogs: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => requests.push(request.url()));
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  await context.route(/^(?!file:)/, (route) => route.abort());
  const start = performance.now();
  await page.goto(url, { waitUntil: 'load' });
  const loadMs = performance.now() - start;
  return { page, url, problems, requests, dialogs, loadMs, close: () => context.close() };
}
