/** A top-level block of a Markdown text, as a renderer (cmark-gfm, marked) groups its lines. */
export interface MarkdownBlock {
  kind: 'heading' | 'table' | 'list' | 'paragraph';
  lines: string[];
}

/**
 * The blocks of a step summary, in order. Blank lines separate blocks here, but a renderer joins a
 * list that follows a list across blank lines into one, and so does this: two lists in a row come
 * back as one block, as they would render.
 */
export function markdownBlocks(text: string): MarkdownBlock[] {
  const blocks: MarkdownBlock[] = [];
  for (const chunk of text.split(/\n{2,}/)) {
    const lines = chunk.split('\n').filter((line) => line !== '');
    if (lines.length === 0) continue;
    const first = lines[0]!;
    const kind = /^#{1,6} /.test(first) && lines.length === 1 ? 'heading' : first.startsWith('|') ? 'table' : /^[-*+] /.test(first) ? 'list' : 'paragraph';
    const last = blocks.at(-1);
    if (kind === 'list' && last?.kind === 'list') last.lines.push(...lines);
    else blocks.push({ kind, lines });
  }
  return blocks;
}
