/** The significant digits of each number written in a JSON text (strings left out): 0.879 has 3, 0.8789999999999998 has 16. */
export function numberDigits(json: string): { literal: string; digits: number }[] {
  const numbers = json.replace(/"(?:[^"\\]|\\.)*"/g, '""').match(/-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/g) ?? [];
  return numbers.map((literal) => ({ literal, digits: literal.replace(/[eE].*$/, '').replace(/[-.]/g, '').replace(/^0+/, '').length }));
}
