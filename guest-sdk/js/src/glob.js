/**
 * Whether `text` matches `pattern`: `*` any run of characters, `?` exactly one (a Unicode
 * code point, as in the Rust SDK's glob), anything else itself.
 */
export function globMatch(pattern, text) {
  const p = [...pattern];
  const t = [...text];
  let pi = 0;
  let ti = 0;
  // The last `*` seen and the text index it currently extends to.
  let starP = -1;
  let starT = 0;
  while (ti < t.length) {
    if (pi < p.length && p[pi] === '*') {
      starP = pi++;
      starT = ti;
    } else if (pi < p.length && (p[pi] === '?' || p[pi] === t[ti])) {
      pi++;
      ti++;
    } else if (starP >= 0) {
      pi = starP + 1;
      ti = ++starT;
    } else {
      return false;
    }
  }
  return p.slice(pi).every((c) => c === '*');
}
