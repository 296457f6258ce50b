// Package idfile reads identifier files: an advertiser's list ([ReadList]),
// an advertiser's customer file of several identifiers per customer
// ([ReadRecords], SPEC.md §13.8), the platform's identifier rows
// ([ReadRows], for "overlap ids import") and consent events ([ReadConsent],
// for bulk consent import).
//
// Every reader streams from an [io.Reader] with bounded memory (apart from
// what it returns, see [ListResult]) and canonicalizes each value with
// [ident.Parse] (SPEC.md §7). A row that cannot be used is not dropped
// silently: it is counted and reported to the caller's onReject callback as a
// [Reject], with its 1-based line number and a reason code. Reasons never
// contain the row's values, so they are safe to print and log; [Reject.Row]
// has the line as read, for a caller that must show it.
//
// Every row is one physical line, in every format, and every line that is
// not blank (or, in txt, a comment) is one row: a malformed line, a stray
// quote included, is one rejected row, and reading resumes at the next
// line. So the counts always add up: Rows = Accepted + Rejected for
// [ReadRows] and [ReadConsent] ([RowsResult]), Rows = Accepted + Duplicates +
// Rejected for [ReadList] ([ListResult]), Rows = len(Records) + Duplicates +
// Rejected for [ReadRecords] ([RecordsResult]), and every rejected row has
// its own line number. [ReadRecords] also reports single bad cells of a row
// (with [Reject.Column] set), which it counts per column.
//
// A reader stops with an error only for problems that make the rest of the
// input meaningless (a missing or unusable header, a read error, UTF-16
// input), when the caller's row callback returns an error, or when the
// caller asks it to stop at a rejected row: [Reject.Stop] from the onReject
// callback, or [ListOptions].MaxRejects. A stop at a rejected row is a
// [*StopError] naming its line and reason, and wraps [ErrTooManyRejects].
//
// The package does no other I/O: callers open files and choose the format,
// for example with [DetectFormat].
//
// # Formats
//
//   - csv: comma-separated, one record per line, with RFC 4180 quoting
//     within the line: a field that starts with '"' runs to a closing '"'
//     followed by a comma or the end of the line, and '""' in it is a quote;
//     a '"' anywhere else is malformed. A quoted field cannot hold a line
//     break (identifier, consent and customer files never need one): a quote
//     left open at the end of its line rejects that line
//     ("unterminated_quote"), and the next line is read as a row of its own.
//     Lines that are empty or hold only whitespace and commas are skipped.
//   - txt: one value per line; lines whose first non-blank character is "#"
//     are comments; blank lines are skipped.
//   - jsonl: one JSON object per line; blank lines are skipped. Values read
//     must be JSON strings, and a key that is read may appear only once
//     per object.
//
// A UTF-8 byte order mark at the start of the input is ignored; UTF-16
// input is refused. Lines may end in "\n" or "\r\n". A line longer than
// [MaxLineLen] bytes is rejected ("line_too_long") and skipped, in every
// format; so a reader holds at most about MaxLineLen bytes of a line.
//
// # Reject reasons
//
// Row-level reasons are the [ident.Reason] codes for values that do not
// canonicalize (for example "display_name" or "needs_region"), and:
//
//	bad_quote              a csv line with a '"' inside an unquoted field, or text after a closing quote
//	unterminated_quote     a csv line whose quoted field is not closed on the line
//	line_too_long          a line longer than MaxLineLen
//	invalid_utf8           a jsonl line that is not UTF-8
//	bad_json               a jsonl line that is not valid JSON
//	not_an_object          a jsonl line that is JSON but not an object
//	duplicate_key          a jsonl object with a key that is read twice
//	missing_field          a jsonl list object without the value's key
//	not_a_string           a value that is not a JSON string
//	unknown_field          a jsonl row or consent object with another key
//	missing_column         a csv list row too short for the value's column
//	field_count            a csv row or consent record whose field count differs from the header's
//	missing_subject        an empty subject
//	bad_subject            a subject longer than 128 bytes, or with control characters
//	bad_kind               a kind other than email, phone or id
//	bad_collected_for      a collected_for that is not an ident.Purpose
//	prehashed_not_allowed  a hex digest where the platform must hold the value
//	kind_without_value     a consent event with a kind but no value
//	value_without_kind     a consent event with a value but no kind
//	bad_purpose            a purpose that is not a lowercase token like ad_matching
//	bad_action             an action other than grant or withdraw
//	bad_time               an at that is not an RFC 3339 timestamp
//	missing_source         an empty source
//	bad_source             a source longer than 128 bytes, or with control characters
//	missing_text_version   a grant without a text_version
//	bad_text_version       a text_version longer than 64 bytes, or with control characters
//	no_identifier          a customer file row with no usable identifier
//	not_sha256             a cell of an email_sha256 or phone_sha256 column that is not 64 hex digits
//	bad_country            a national phone number whose row's country is not a region code
package idfile
