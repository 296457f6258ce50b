// Package client is the advertiser's side of the Overlap service: it runs
// a session (psi's client sequence, SPEC.md) against a platform's server
// over Connect RPC, HTTP/2 and TLS 1.3, and returns what the advertiser
// learns.
//
//	c, err := client.New(client.Config{Addr: "platform.example:8443", APIKey: key, TLS: tlsCfg})
//	res, err := c.MatchPrivate(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: digests})
//
// MatchPrivate (private mode, SPEC.md §10) returns the platform's noised,
// thresholded count; Match (exact mode, SPEC.md §4) the exact overlap,
// which a platform serves only to advertisers it trusts (SPEC.md §8.2).
// A refused session is a Connect error whose metadata [RefusalOf] reads.
//
// The package links no server dependency: no SQL driver, no metrics, no
// plotting. It also holds what an advertiser holds and reads: its
// [APIKey], and the names of the limits a server refuses a session for.
package client
