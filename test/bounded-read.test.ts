import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import test from 'node:test';
import { decodeUtf8, readRegularFile, readStreamBounded } from '../src/core/bounded-read.js';
import { isClipEvalError, rejectsWithOneLine } from './support/errors.js';
import { makeTempDir } from './support/paths.js';

test('decodeUtf8: valid text passes (BOM dropped); the first invalid sequence is named by byte and line', () => {
  assert.equal(decodeUtf8(Buffer.from('\ufeffcafé\n北京\n'), 'names.txt'), 'café\n北京\n');
  const cases: [Buffer, string][] = [
    [Buffer.from('ok\ncaf\xe9\n', 'latin1'), 'byte 6, line 2'],
    [Buffer.concat([Buffer.from('a\nb\n'), Buffer.from([0xff])]), 'byte 4, line 3'],
    [Buffer.concat([Buffer.from('ab'), Buffer.from('北').subarray(0, 2)]), 'byte 2, line 1'],
    [Buffer.from([0xc0, 0x80]), 'byte 0, line 1'],
  ];
  for (const [bytes, where] of cases) {
    assert.throws(() => decodeUtf8(bytes, 'names.txt'), isClipEvalError(new RegExp(`^names\\.txt: not valid UTF-8 \\(${where}\\)`)));
  }
});

test('readRegularFile: refuses FIFOs and devices without blocking, and files over the limit', { timeout: 30_000 }, async () => {
  const dir = await makeTempDir();
  try {
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    await rejectsWithOneLine(readRegularFile(join(dir, 'pipe'), { maxBytes: 100, label: 'pipe' }), /^pipe: is a FIFO \(named pipe\), not a regular file/);
    await rejectsWithOneLine(readRegularFile('/dev/zero', { maxBytes: 100, label: 'zero' }), /^zero: is a character device/);
    await writeFile(join(dir, 'big'), Buffer.alloc(101));
    await rejectsWithOneLine(readRegularFile(join(dir, 'big'), { maxBytes: 100, label: 'big' }), /^big: more than the limit of 100 bytes/);
    const reserved: number[] = [];
    const bytes = await readRegularFile(join(dir, 'big'), { maxBytes: 101, label: 'big', beforeRead: async (size) => void reserved.push(size) });
    assert.equal(bytes.length, 101);
    assert.deepEqual(reserved, [101]);
    await assert.rejects(readRegularFile(join(dir, 'missing'), { maxBytes: 100, label: 'missing' }), { code: 'ENOENT' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readStreamBounded: stops reading an endless stream past the limit', async () => {
  let chunks = 0;
  const endless = new Readable({ read() { chunks += 1; this.push(Buffer.alloc(1000)); } });
  await rejectsWithOneLine(readStreamBounded(endless, 10_000, 'standard input'), /^standard input: more than the limit of 10000 bytes/);
  assert.ok(chunks < 100, `${chunks} chunks read`);
  assert.equal((await readStreamBounded(Readable.from([Buffer.from('ab'), Buffer.from('c')]), 3, 'in')).toString(), 'abc');
});
