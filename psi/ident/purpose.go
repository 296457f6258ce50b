package ident

// Purpose says why a platform collected an identifier: the collected_for
// column of its identifier files and of its consent store. It is the one
// home of the rule that keeps security identifiers out of matching: an
// identifier collected for a security purpose never becomes matchable,
// whatever its consents (SPEC.md §8.5).
type Purpose string

// The collection purposes. TwoFactor, Recovery and LoginAlert are the
// security purposes.
const (
	Signup     Purpose = "signup"
	Profile    Purpose = "profile"
	TwoFactor  Purpose = "two_factor"  // two-factor authentication
	Recovery   Purpose = "recovery"    // account recovery
	LoginAlert Purpose = "login_alert" // login alerts
	Imported   Purpose = "imported"
)

// Purposes lists every collection purpose.
var Purposes = []Purpose{Signup, Profile, TwoFactor, Recovery, LoginAlert, Imported}

// Valid reports whether p is one of the collection purposes.
func (p Purpose) Valid() bool {
	switch p {
	case Signup, Profile, TwoFactor, Recovery, LoginAlert, Imported:
		return true
	}
	return false
}

// Security reports whether p is a security purpose (two-factor
// authentication, account recovery, login alerts).
func (p Purpose) Security() bool {
	switch p {
	case TwoFactor, Recovery, LoginAlert:
		return true
	}
	return false
}
