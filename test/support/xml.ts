import { spawnSync } from 'node:child_process';

/**
 * Parses XML with Python's standard library (a real parser, present on every machine of this
 * project) and returns the attributes of the elements asked for, or throws on malformed XML.
 */
export function xmlElements(xml: string, tag: string): Record<string, string>[] {
  const script = [
    'import json, sys, xml.etree.ElementTree as ET',
    'root = ET.fromstring(sys.stdin.read())',
    'nodes = [root] if root.tag == sys.argv[1] else []',
    'nodes += root.iter(sys.argv[1]) if root.tag != sys.argv[1] else []',
    'print(json.dumps([dict(n.attrib, _children=[c.tag for c in n]) for n in nodes]))',
  ].join('\n');
  const result = spawnSync('python3', ['-c', script, tag], { input: xml, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`malformed XML: ${result.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(result.stdout) as Record<string, string>[];
}

export const havePython = spawnSync('python3', ['--version']).status === 0;
