import { gzipSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';
import { Header } from 'tar';
const mb = Number(process.argv[2]);
const entries = [['cifar-100-binary/test.bin', Buffer.alloc(3074*2)], ['cifar-100-binary/fine_label_names.txt', Buffer.from(Array.from({length:100},(_, i)=>`c${i}`).join('\n')+'\n')], ['cifar-100-binary/coarse_label_names.txt', Buffer.from(Array.from({length:20},(_, i)=>`g${i}`).join('\n')+'\n')]];
const blocks = [];
for (const [path, body] of entries) { const h = new Header({ path, type: 'File', size: body.length, mode: 0o644, mtime: new Date(0) }); const b = Buffer.alloc(512); h.encode(b, 0); blocks.push(b, body, Buffer.alloc((512 - body.length % 512) % 512)); }
blocks.push(Buffer.alloc(1024 + mb * 1024 * 1024));
writeFileSync(process.argv[3], gzipSync(Buffer.concat(blocks)));
