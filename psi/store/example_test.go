package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/store"
)

// A person gives an email at signup and a phone number for two-factor
// authentication, then consents to ad matching. Only the email is matchable.
func Example() {
	ctx := context.Background()
	s, err := store.Open(ctx, ":memory:") // or "postgres://…", or a file path
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	id := func(kind psi.Kind, value string, p store.Purpose) store.Identifier {
		return store.Identifier{Subject: "user-1", Kind: kind, Value: value, Digest: sha256.Sum256([]byte(value)), CollectedFor: p}
	}
	res, err := s.ImportIdentifiers(ctx, slices.Values([]store.Identifier{
		id(psi.KindEmail, "ana@example.com", store.Signup),
		id(psi.KindPhone, "+14155550100", store.TwoFactor),
	}), store.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("imported %d of %d\n", res.Inserted, res.Read)

	_, err = s.AppendConsent(ctx, slices.Values([]store.ConsentEvent{{
		Subject: "user-1", Purpose: store.AdMatching, Granted: true, // subject-wide
		At: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Source: "settings", TextVersion: "ads-v3",
	}}), store.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}

	for _, kind := range []psi.Kind{psi.KindEmail, psi.KindPhone} {
		info, err := s.Snapshot(ctx, kind, func(digest [32]byte) error { return nil })
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: version %d, %d matchable\n", kind, info.Version, info.Size)
	}
	stats, err := s.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("phone: %d identifier, %d excluded for security\n", stats[1].Identifiers, stats[1].Security)
	// Output:
	// imported 2 of 2
	// email: version 1, 1 matchable
	// phone: version 2, 0 matchable
	// phone: 1 identifier, 1 excluded for security
}
