package ident

import "testing"

// The security purposes are exactly two-factor authentication, account
// recovery and login alerts; nothing else is a purpose at all.
func TestPurpose(t *testing.T) {
	security := map[Purpose]bool{TwoFactor: true, Recovery: true, LoginAlert: true}
	for _, p := range Purposes {
		if !p.Valid() || p.Security() != security[p] {
			t.Errorf("%s: Valid %t, Security %t", p, p.Valid(), p.Security())
		}
	}
	for _, p := range []Purpose{"", "ad_matching", "Signup", "two-factor", "Two_Factor"} {
		if p.Valid() || p.Security() {
			t.Errorf("%q: Valid or Security", p)
		}
	}
}
