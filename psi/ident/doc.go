// Package ident canonicalizes identifiers (email addresses, phone numbers
// and opaque ids) so that an advertiser's client and the platform's server
// derive the same bytes, and so the same group element, from the same
// person's identifier. It implements SPEC.md §7.
//
// [Parse] turns one raw value into an [Identifier]: its canonical string and
// the SHA-256 digest of that string, which is what the protocol hashes to the
// group (SPEC.md §3.2). A value that cannot be canonicalized without guessing
// is rejected with an [*Error] whose [Reason] says why; neither the error nor
// an [Identifier]'s printed form ever contains the value.
//
// The package does no I/O. It is safe for concurrent use.
//
// # Canonicalization rules, version 1
//
// These rules are identified by [Version], which travels in the protocol
// parameters. Lengths are in bytes of UTF-8. Unicode properties, case
// mappings, NFC and UTS #46 are those of Unicode 15.0.0.
//
// All kinds (SPEC.md §7):
//
//  1. Remove leading and trailing code points that have the Unicode
//     White_Space property, U+FEFF (byte order mark) or U+200B (zero width
//     space). An empty result is rejected (empty).
//  2. Reject a result longer than 320 bytes for email, 64 for phone, 256 for
//     id (too_long).
//  3. Email and phone only: a value of exactly 64 hexadecimal digits, in
//     either case, is a pre-hashed identifier, the SHA-256 of a canonical
//     value computed by its holder. Its digest is the 32 decoded bytes; it has
//     no canonical string. Ids are never pre-hashed.
//  4. Reject invalid UTF-8 (invalid_utf8) and code points of general category
//     Cc (control_char).
//  5. The digest is SHA-256 of the UTF-8 bytes of the canonical string.
//
// Email (SPEC.md §7.1):
//
//  1. Reject a "mailto:" prefix in any case (mailto), "<" or ">" (display_name),
//     `"` or `\` (quoted), "(" or ")" (comment), "," or ";"
//     (multiple_addresses) and any White_Space code point (whitespace).
//  2. Require exactly one "@" (not_an_email, multiple_at); it splits the
//     local part from the domain.
//  3. Local part: apply NFC, then the Unicode simple lowercase mapping to
//     each code point, then NFC again. The result must be 1 to 64 bytes
//     (local_too_long), must not start or end with "." nor contain "..", and
//     may contain only ASCII letters and digits, the characters
//     .!#$%&'*+-/=?^_`{|}~, and non-ASCII code points of general category L,
//     M, N, P or S (bad_local_part).
//  4. Domain: remove one trailing "."; reject an address literal such as
//     "[192.0.2.1]" (ip_literal); convert with UTS #46 ToASCII,
//     non-transitional, with UseSTD3ASCIIRules, CheckHyphens, CheckBidi and
//     CheckJoiners (the golang.org/x/net/idna Lookup profile), and lowercase
//     it. The result must convert to itself, be at most 253 bytes and have
//     at least two labels of 1 to 63 bytes each (bad_domain), and its last
//     label must not be all digits (ip_literal).
//  5. Only with [Options.GmailNormalize], which both parties must agree on:
//     if the domain is gmail.com or googlemail.com, cut the local part at
//     its first "+", remove every "." from it (it must stay non-empty) and
//     set the domain to gmail.com.
//  6. The canonical string is local part, "@", domain.
//
// Phone (SPEC.md §7.2):
//
//  1. Allowed code points: the digits 0-9 and their fullwidth
//     (U+FF10-U+FF19), Arabic-Indic (U+0660-U+0669) and Extended
//     Arabic-Indic (U+06F0-U+06F9) forms; the separators space, U+00A0, "-",
//     ".", "(", ")", "/", U+2010-U+2015 and U+2212; and one "+" or U+FF0B as
//     the first code point. Letters, which covers vanity numbers, extensions
//     and "tel:", are rejected (letters), as is anything else (bad_char).
//  2. Digits map to ASCII and separators are removed. A leading "00" is read
//     as "+".
//  3. A number without "+" is national and is read in [Options.DefaultRegion];
//     without a default region it is rejected (needs_region).
//  4. Parse with libphonenumber (github.com/nyaruka/phonenumbers v1.8.1,
//     metadata of libphonenumber 9.0.32) and require IsValidNumber
//     (invalid_phone). The canonical string is the E.164 form: "+", the
//     country calling code and the national significant number. Both
//     parties should use the same metadata: updates mostly change which
//     numbers are valid.
//
// Id (SPEC.md §7.3): the canonical string is the trimmed value, unchanged.
package ident
