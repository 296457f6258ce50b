// Package gcs encodes and decodes the Golomb-compressed sets (GCS) in which
// the server sends its session-salted tags to the client (SPEC.md §6).
//
// The package does no I/O. The Encoder is for the server's own values; the
// Decoder parses a peer's bytes, treats every byte as hostile, and never
// panics. Values are not secret from the party that receives the set, so
// nothing here is constant time.
//
// # Format
//
// Parameters. N is the number of values, 1 ≤ N ≤ 2^32. M is the range per
// value, 1 ≤ M < 2^64. K is the Rice parameter, 0 ≤ K ≤ 63 and
// K ≤ bitlen(M). The value range is F = N·M (F < 2^96).
//
// Values. A value is an unsigned integer v with 0 ≤ v < F. A uniform
// 128-bit hash h (16 bytes, big-endian; which bytes of a tag is for the
// protocol to say) is mapped to the value Reduce(h, F) = ⌊h·F / 2^128⌋.
//
// Sequence. The N values are sorted: v_0 ≤ v_1 ≤ … ≤ v_{N−1} (equal values
// are allowed). Value i is coded by its gap d_i = v_i − v_{i−1}, with
// v_{−1} = 0, as q_i = ⌊d_i / 2^K⌋ one-bits, one zero-bit, and
// r_i = d_i mod 2^K in K bits, most significant bit first.
//
// Chunks. The sequence is cut into consecutive chunks of count ≥ 1 values
// each (the encoder chooses the counts; they add up to N). A chunk's data is
// the concatenation of its values' code words, packed into bytes most
// significant bit first (the first bit is bit 7 of byte 0), then zero-bits up
// to the next byte boundary (none if the last code word ends on one). Gaps
// continue across chunks: the first gap of a chunk is taken from the last
// value of the previous chunk. A chunk is the pair (count, data); its framing
// is outside this section.
//
// A decoder MUST reject the set if a chunk has count < 1 or takes the number
// of values past N; a value is ≥ F; the data ends inside a code word; a
// padding bit is 1; a whole byte follows the byte that holds the last code
// word's last bit; or the chunks hold fewer than N values in total. The
// encoding is therefore canonical: a sequence and its chunk counts have
// exactly one valid encoding. A decoder SHOULD bound a unary run by the
// value range before reading it, so that its work is linear in the data.
//
// Example: N = 4, M = 3, K = 1 (F = 12) and values 1, 1, 6, 11 give gaps
// 1, 0, 5, 5, code words 0|1, 0|0, 110|1, 110|1, and in one chunk the
// count 4 and the data 0x4d 0xd0 (0100 1101 1101, then 4 padding bits).
//
// # False positives and size
//
// A query value independent of the set equals one of its N values with
// probability at most N/F = 1/M, so Q queries give at most Q/M expected false
// positives; ChooseParams picks M from Q and a target. For gaps between
// uniform values, ExpectedBits gives the expected bits per value of the Rice
// code and OptimalBits those of the best Golomb code; with K from
// ChooseParams the Rice code costs at most 0.091 bits per value more than
// the optimum (less than 2% for every M; at M = 10^11, 38.0120 against
// 38.0120 bits).
package gcs
