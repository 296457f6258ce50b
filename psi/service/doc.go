// Package service puts the Overlap protocol (package psi, SPEC.md) on the
// network: the Connect RPC service over HTTP/2 and TLS 1.3 that an ad
// platform runs ([Server]). Advertisers call it with package
// [github.com/overlap-psi/overlap/psi/client], which links none of this
// package's server dependencies (store, metrics).
//
// One bidirectional stream carries one session, of either mode. Each
// protobuf message wraps one SPEC.md §5 or §10.7 message as opaque bytes
// (SPEC.md §11), and the server plays psi's sequence of the session's mode
// over the stream (psi.Server.Serve, psi.PrivateServer.Serve):
//
//	Client                                    Server
//	                                          authenticate (API key or client cert)
//	MatchRequest{ClientHello}       ───────▶  policy: kind, mode, list size, sessions
//	                                          in flight, abandoned sessions, budget
//	                                          (reserved with a journal row, leased)
//	                                          ── only now any scalar multiplication ──
//	                                          snapshot → the session's set
//	                                ◀───────  MatchResponse{params, snapshot}
//	exact mode:
//	MatchRequest{BlindedChunk}…     ───────▶  evaluated chunk by chunk
//	close                           ───────▶  journal: elements_sent (spend final)
//	                                ◀───────  MatchResponse{EvaluatedChunk}…
//	                                ◀───────  MatchResponse{ServerSetChunk}…
//	private mode:
//	                                          journal: elements_sent (spend final)
//	                                ◀───────  MatchResponse{ServerElementChunk}…
//	MatchRequest{ClientKey}         ───────▶
//	MatchRequest{BlindedChunk}…     ───────▶
//	MatchRequest{ReturnedChunk}…    ───────▶  ringer check, count, noise
//	close                           ───────▶
//	                                ◀───────  MatchResponse{PrivateRelease}
//	                                          audit row (replacing the journal row,
//	                                          refund if nothing was sent) + log line
//
// Every policy check happens after the ClientHello and before the server
// prepares its set or evaluates anything; a refused session gets a Connect
// error whose code and metadata (Overlap-Limit, Overlap-Resets-At) name the
// limit. Each session, refused or not, leaves one row in the store's
// append-only audit log and one slog line; neither holds identifiers,
// digests, elements, keys or API keys.
//
// Crash recovery (journal.go, SPEC.md §8.6): while a session is open the
// store holds its journal row, leased to this server, which renews the
// leases of its sessions every Config.Lease/3. At start and every
// Config.ReconcileInterval the server closes the sessions whose lease
// ended (their server stopped) as "crashed": refunded if they had not
// reached elements_sent, charged otherwise. Store calls of a session that
// meet a busy store (store.IsBusy) are retried within Config.IdleTimeout.
// A client that leaves a session after admission without sending any
// element is audited as "abandoned", refunded, and its advertiser slowed
// down past Config.AbandonFree per hour (SPEC.md §10.8.2).
package service
