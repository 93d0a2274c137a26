/**
 * The decoded size of base64 text, or undefined when it is not base64 (RFC 4648 §4, white space between the
 * characters allowed as MIME wraps lines, RFC 2045 §6.8). One pass over the character codes: a regular
 * expression over the whole string recurses per group and exhausts V8's stack above ~4 million characters.
 */
export function base64DecodedSize(text: string): number | undefined {
  let chars = 0
  let padding = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d) || (c > 0x7f && /\s/.test(text[i]!))) continue
    if (c === 0x3d) {
      // "=" only at the end, at most two of them.
      if (++padding > 2) return undefined
      chars++
      continue
    }
    if (padding > 0 || c > 0x7f || ALPHABET[c] === 0) return undefined
    chars++
  }
  if (chars % 4 !== 0) return undefined
  return (chars / 4) * 3 - padding
}

/** 1 for the characters of the base64 alphabet (A-Z, a-z, 0-9, +, /), by character code. */
const ALPHABET = new Uint8Array(128)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') ALPHABET[c.charCodeAt(0)] = 1
