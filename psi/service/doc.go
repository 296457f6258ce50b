// Package service puts the Overlap protocol (package psi, SPEC.md) on the
// network: a Connect RPC service over HTTP/2 and TLS 1.3 that an ad
// platform runs ([Server]) and an advertiser calls ([Client]).
//
// One bidirectional stream carries one exact-mode session. Each protobuf
// message wraps one SPEC.md §5 message as opaque bytes (SPEC.md §11):
//
//	Client                                   Server
//	                                         authenticate (API key or client cert)
//	MatchRequest{ClientHello}      ───────▶  policy: kind, mode, list size, sessions
//	                                         in flight, budget (reserved in the store)
//	                                         ── only now any scalar multiplication ──
//	                                         snapshot → psi.PreparedSet
//	                               ◀───────  MatchResponse{ServerParams, snapshot}
//	MatchRequest{BlindedChunk}…    ───────▶  evaluated chunk by chunk
//	close                          ───────▶
//	                               ◀───────  MatchResponse{EvaluatedChunk}…
//	                               ◀───────  MatchResponse{ServerSetChunk}…
//	                                         audit row + log line
//
// Every policy check happens after the ClientHello and before the server
// prepares its set or evaluates anything; a refused session gets a Connect
// error whose code and metadata (Overlap-Limit, Overlap-Resets-At) name the
// limit. Each session, refused or not, leaves one row in the store's
// append-only audit log and one slog line; neither holds identifiers,
// digests, elements, keys or API keys.
package service
