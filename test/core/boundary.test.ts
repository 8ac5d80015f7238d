import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const dir = new URL('../../lib/core/', import.meta.url);
const sources = readdirSync(dir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => ({ file: f, text: readFileSync(new URL(f, dir), 'utf8') }));

describe('lib/core boundary', () => {
  it('imports nothing but its own modules', () => {
    const foreign = sources.flatMap(({ file, text }) =>
      [...text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)]
        .map((m) => m[1]!)
        .filter((spec) => !spec.startsWith('./'))
        .map((spec) => `${file}: ${spec}`),
    );
    expect(foreign).toEqual([]);
  });

  it('never reads the clock or randomness', () => {
    const clocks = sources.flatMap(({ file, text }) =>
      [...text.matchAll(/\b(Date\.now|new Date|performance\.now|Math\.random|process\.hrtime)\b/g)].map(
        (m) => `${file}: ${m[1]}`,
      ),
    );
    expect(clocks).toEqual([]);
  });
});
