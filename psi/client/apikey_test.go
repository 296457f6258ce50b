package client

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestAPIKey(t *testing.T) {
	k, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	s := k.Reveal()
	if !strings.HasPrefix(s, "ovl_"+k.ID+"_") || len(s) != 4+12+1+52 {
		t.Fatalf("key %q", s)
	}
	p, err := ParseAPIKey(" " + s + "\n")
	h := k.Hash()
	if err != nil || p != k || p.Hash() != h || !p.Matches(h[:]) {
		t.Fatalf("ParseAPIKey = %v, %v", p, err)
	}
	// The secret never prints.
	for _, out := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %q", k, k, k, k, k)} {
		if strings.Contains(out, k.secret) || !strings.Contains(out, k.ID) {
			t.Errorf("printed %q", out)
		}
	}
	// Two keys differ; a wrong secret does not match.
	k2, _ := NewAPIKey()
	if k2.ID == k.ID || k2.Matches(h[:]) {
		t.Error("two keys collide")
	}
	// Deterministic from the reader.
	d, _ := newAPIKey(bytes.NewReader(make([]byte, 64)))
	if d.Reveal() != "ovl_000000000000_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Errorf("zero key %q", d.Reveal())
	}
	for _, bad := range []string{
		"", "ovl_", "ovl_00000000000_" + k.secret, "ovl_" + k.ID, "ovl_" + strings.ToUpper(k.ID) + "_" + k.secret,
		"OVL_" + k.ID + "_" + k.secret, "ovl_" + k.ID + "_" + strings.ToUpper(k.secret), s + "a", s[:len(s)-1],
		"ovl_" + k.ID + "_" + k.secret[:51] + "1", "Bearer " + s,
	} {
		if _, err := ParseAPIKey(bad); !errors.Is(err, ErrAPIKeyFormat) {
			t.Errorf("ParseAPIKey(%q) = %v", bad, err)
		}
	}
}
