/**
 * The one spelling of an email under which it is stored and looked up: Unicode NFKC, then
 * lowercased (and NFKC again, as lowercasing can decompose: `İ` becomes `i` + U+0307).
 * `café` typed precomposed (U+00E9) or as `e` + U+0301 is one address, not two accounts; so
 * are `ａdmin` (fullwidth) and `admin`, `ﬁ` (a ligature) and `fi`. Look-alikes from other
 * scripts (a Cyrillic `а`) stay distinct addresses, as they are for mail servers.
 */
export function canonicalEmail(email: string): string {
  return email.normalize('NFKC').toLowerCase().normalize('NFKC')
}

/**
 * Characters no email may hold: controls (Cc), format characters (Cf: bidi overrides and
 * isolates, zero-width characters, the soft hyphen), everything Unicode says to draw as nothing
 * (default-ignorable: variation selectors, Hangul fillers, the combining grapheme joiner),
 * private-use and lone surrogates. Each would let two addresses look alike or one look reversed.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}\p{Co}\p{Cs}]/u

/** Whether `email` holds a character no email may hold (see {@link INVISIBLE}). */
export function hasInvisibleCharacters(email: string): boolean {
  return INVISIBLE.test(email)
}
