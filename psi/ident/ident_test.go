package ident

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi"
)

const (
	email = psi.KindEmail
	phone = psi.KindPhone
	id    = psi.KindID
)

var (
	us    = Options{DefaultRegion: "US"}
	gb    = Options{DefaultRegion: "GB"}
	gmail = Options{GmailNormalize: true}
)

type parseTest struct {
	kind psi.Kind
	raw  string
	opts Options
	want string // canonical form; empty when the value is rejected
	err  Reason // expected reason when rejected
}

var parseTests = []parseTest{
	// Whitespace.
	{email, "  bob@example.com", Options{}, "bob@example.com", ""},
	{email, "bob@example.com\t\r\n", Options{}, "bob@example.com", ""},
	{email, "\u00a0bob@example.com\u00a0", Options{}, "bob@example.com", ""},
	{email, "\ufeffbob@example.com", Options{}, "bob@example.com", ""},
	{email, "\u200b\u2003bob@example.com\u3000", Options{}, "bob@example.com", ""},
	{email, "", Options{}, "", ReasonEmpty},
	{email, " \t\u00a0\ufeff ", Options{}, "", ReasonEmpty},
	{email, "bob @example.com", Options{}, "", ReasonWhitespace},
	{email, "bob@exa\u00a0mple.com", Options{}, "", ReasonWhitespace},
	{email, "bob@example.com\u2028x", Options{}, "", ReasonWhitespace},
	{phone, " +1 415 555 2671\n", Options{}, "+14155552671", ""},
	{phone, "\t", us, "", ReasonEmpty},
	{id, "  user-42\t", Options{}, "user-42", ""},
	{id, "\ufeff", Options{}, "", ReasonEmpty},

	// Case and Unicode normalization.
	{email, "Bob@Example.COM", Options{}, "bob@example.com", ""},
	{email, "BOB.SMITH@EXAMPLE.COM", Options{}, "bob.smith@example.com", ""},
	{email, "Jöran@example.se", Options{}, "jöran@example.se", ""},
	{email, "E\u0301lodie@example.fr", Options{}, "\u00e9lodie@example.fr", ""}, // decomposed É
	{email, "\u00c9LODIE@example.fr", Options{}, "\u00e9lodie@example.fr", ""},  // precomposed É
	{email, "İstanbul@example.com", Options{}, "istanbul@example.com", ""},

	// Display names and angle brackets.
	{email, "Bob <bob@example.com>", Options{}, "", ReasonDisplayName},
	{email, "<bob@example.com>", Options{}, "", ReasonDisplayName},
	{email, `"Bob Smith" <bob@example.com>`, Options{}, "", ReasonDisplayName},
	{email, "bob@example.com>", Options{}, "", ReasonDisplayName},

	// Quoted local parts, backslashes and comments.
	{email, `"bob"@example.com`, Options{}, "", ReasonQuoted},
	{email, `"bob smith"@example.com`, Options{}, "", ReasonQuoted},
	{email, `bob\@x@example.com`, Options{}, "", ReasonQuoted},
	{email, "bob(work)@example.com", Options{}, "", ReasonComment},
	{email, "bob@example.com (Bob)", Options{}, "", ReasonComment},

	// Multiple addresses.
	{email, "a@example.com, b@example.com", Options{}, "", ReasonMultipleAddresses},
	{email, "a@example.com;b@example.com", Options{}, "", ReasonMultipleAddresses},
	{email, "a@example.com b@example.com", Options{}, "", ReasonWhitespace},

	// Prefixes.
	{email, "mailto:bob@example.com", Options{}, "", ReasonMailto},
	{email, "MailTo:bob@example.com", Options{}, "", ReasonMailto},
	{email, "smtp:bob@example.com", Options{}, "", ReasonBadLocalPart},

	// Missing or extra @.
	{email, "bob.example.com", Options{}, "", ReasonNotAnEmail},
	{email, "bob＠example.com", Options{}, "", ReasonNotAnEmail}, // fullwidth @
	{email, "bob@@example.com", Options{}, "", ReasonMultipleAt},
	{email, "bob@x@example.com", Options{}, "", ReasonMultipleAt},
	{email, "@example.com", Options{}, "", ReasonBadLocalPart},
	{email, "bob@", Options{}, "", ReasonBadDomain},

	// Dots in the local part.
	{email, "bob.smith@example.com", Options{}, "bob.smith@example.com", ""},
	{email, ".bob@example.com", Options{}, "", ReasonBadLocalPart},
	{email, "bob.@example.com", Options{}, "", ReasonBadLocalPart},
	{email, "bob..smith@example.com", Options{}, "", ReasonBadLocalPart},

	// Local part characters.
	{email, "bob+ads@example.com", Options{}, "bob+ads@example.com", ""},
	{email, "o'brien@example.ie", Options{}, "o'brien@example.ie", ""},
	{email, "a!#$%&'*+-/=?^_`{|}~z@example.com", Options{}, "a!#$%&'*+-/=?^_`{|}~z@example.com", ""},
	{email, "用户@例子.广告", Options{}, "用户@xn--fsqu00a.xn--4rr70v", ""},
	{email, "bob:x@example.com", Options{}, "", ReasonBadLocalPart},
	{email, "bob[1]@example.com", Options{}, "", ReasonBadLocalPart},
	{email, "bob\u200d@example.com", Options{}, "", ReasonBadLocalPart}, // zero width joiner
	{email, "bob\u202e@example.com", Options{}, "", ReasonBadLocalPart}, // right-to-left override
	{email, "bob\x00@example.com", Options{}, "", ReasonControlChar},
	{email, "bob\x85@example.com", Options{}, "", ReasonInvalidUTF8},

	// Lengths.
	{email, strings.Repeat("a", 64) + "@example.com", Options{}, strings.Repeat("a", 64) + "@example.com", ""},
	{email, strings.Repeat("a", 65) + "@example.com", Options{}, "", ReasonLocalTooLong},
	{email, "a@" + strings.Repeat("b", 63) + ".com", Options{}, "a@" + strings.Repeat("b", 63) + ".com", ""},
	{email, "a@" + strings.Repeat("b", 64) + ".com", Options{}, "", ReasonBadDomain},
	{email, "a@" + strings.Repeat("b.", 126) + "com", Options{}, "", ReasonBadDomain}, // 254-byte domain
	{email, "a@" + strings.Repeat("b", 320) + ".com", Options{}, "", ReasonTooLong},

	// Domains: IDN, trailing dots, LDH rules, IP literals.
	{email, "bob@bücher.example", Options{}, "bob@xn--bcher-kva.example", ""},
	{email, "bob@BÜCHER.Example", Options{}, "bob@xn--bcher-kva.example", ""},
	{email, "bob@XN--BCHER-KVA.example", Options{}, "bob@xn--bcher-kva.example", ""},
	{email, "bob@faß.de", Options{}, "bob@xn--fa-hia.de", ""}, // non-transitional
	{email, "bob@example.com.", Options{}, "bob@example.com", ""},
	{email, "bob@example.com..", Options{}, "", ReasonBadDomain},
	{email, "bob@example..com", Options{}, "", ReasonBadDomain},
	{email, "bob@.example.com", Options{}, "", ReasonBadDomain},
	{email, "bob@localhost", Options{}, "", ReasonBadDomain},
	{email, "bob@exa_mple.com", Options{}, "", ReasonBadDomain},
	{email, "bob@-example.com", Options{}, "", ReasonBadDomain},
	{email, "bob@xn--a.com", Options{}, "", ReasonBadDomain},
	{email, "bob@xℵy.com", Options{}, "", ReasonBadDomain}, // maps to a Bidi rule violation
	{email, "bob@ℵ.com", Options{}, "bob@xn--4db.com", ""},
	{email, "bob@[192.0.2.1]", Options{}, "", ReasonIPLiteral},
	{email, "bob@[IPv6:2001:db8::1]", Options{}, "", ReasonIPLiteral},
	{email, "bob@192.0.2.1", Options{}, "", ReasonIPLiteral},

	// Gmail, option off: addresses are kept as written (lowercased).
	{email, "B.o.b+ads@gmail.com", Options{}, "b.o.b+ads@gmail.com", ""},
	{email, "bob@googlemail.com", Options{}, "bob@googlemail.com", ""},

	// Gmail, option on.
	{email, "B.o.b+ads@gmail.com", gmail, "bob@gmail.com", ""},
	{email, "Bob.Smith@GoogleMail.com", gmail, "bobsmith@gmail.com", ""},
	{email, "bob+a+b@gmail.com.", gmail, "bob@gmail.com", ""},
	{email, "+ads@gmail.com", gmail, "", ReasonBadLocalPart},
	{email, "b.o.b+ads@example.com", gmail, "b.o.b+ads@example.com", ""},
	{email, "bob@mail.gmail.com", gmail, "bob@mail.gmail.com", ""},

	// Pre-hashed values.
	{email, strings.Repeat("ab", 32), Options{}, "", ""},
	{email, " " + strings.Repeat("AB", 32) + "\n", Options{}, "", ""},
	{phone, strings.Repeat("0", 64), Options{}, "", ""},
	{email, strings.Repeat("a", 63), Options{}, "", ReasonNotAnEmail},
	{email, strings.Repeat("a", 65), Options{}, "", ReasonNotAnEmail},
	{email, strings.Repeat("g", 64), Options{}, "", ReasonNotAnEmail},
	{id, strings.Repeat("ab", 32), Options{}, strings.Repeat("ab", 32), ""},

	// Phones with a default region.
	{phone, "(415) 555-2671", us, "+14155552671", ""},
	{phone, "415.555.2671", us, "+14155552671", ""},
	{phone, "1-415-555-2671", us, "+14155552671", ""},
	{phone, "(415) 555-2671", Options{DefaultRegion: "us"}, "+14155552671", ""},
	{phone, "020 7946 0958", gb, "+442079460958", ""},
	{phone, "011 44 20 7946 0958", us, "+442079460958", ""},
	{phone, "030/12345678", Options{DefaultRegion: "DE"}, "+493012345678", ""},
	{phone, "555-2671", us, "", ReasonInvalidPhone},
	{phone, "(415) 555-2671", Options{DefaultRegion: "XX"}, "", ReasonBadRegion},
	{phone, "+1 415 555 2671", Options{DefaultRegion: "USA"}, "", ReasonBadRegion},

	// Phones in international form need no region.
	{phone, "+1 415 555 2671", Options{}, "+14155552671", ""},
	{phone, "+1 415 555 2671", gb, "+14155552671", ""},
	{phone, "+44 20 7946 0958", Options{}, "+442079460958", ""},
	{phone, "+44 (0)20 7946 0958", Options{}, "+442079460958", ""},
	{phone, "0044 20 7946 0958", Options{}, "+442079460958", ""},
	{phone, "0044 20 7946 0958", us, "+442079460958", ""},
	{phone, "+33 6 12 34 56 78", Options{}, "+33612345678", ""},
	{phone, "+39 06 698 1234", Options{}, "+39066981234", ""}, // Italian leading zero kept
	{phone, "\u00a0+1\u00a0415\u00a0555\u00a02671", Options{}, "+14155552671", ""},
	{phone, "+1\u2013415\u2013555\u20132671", Options{}, "+14155552671", ""}, // en dashes
	{phone, "＋１ ４１５ ５５５ ２６７１", Options{}, "+14155552671", ""},                // fullwidth
	{phone, "٠٠٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨", Options{}, "+442079460958", ""},             // Arabic-Indic

	// Phones without a country code or region.
	{phone, "555-2671", Options{}, "", ReasonNeedsRegion},
	{phone, "(415) 555-2671", Options{}, "", ReasonNeedsRegion},
	{phone, "14155552671", Options{}, "", ReasonNeedsRegion},

	// Invalid phone numbers: too short, too long, unknown country code.
	{phone, "+1 415 555 267", Options{}, "", ReasonInvalidPhone},
	{phone, "+1 415 555 26711", Options{}, "", ReasonInvalidPhone},
	{phone, "+1 415 555 2671 1234 5678 9012", Options{}, "", ReasonInvalidPhone},
	{phone, "+999 1234 5678", Options{}, "", ReasonInvalidPhone},
	{phone, "+0044 20 7946 0958", Options{}, "", ReasonInvalidPhone},
	{phone, "+", Options{}, "", ReasonInvalidPhone},
	{phone, "00", us, "", ReasonInvalidPhone},
	{phone, "123", us, "", ReasonInvalidPhone},
	{phone, "+1 " + strings.Repeat("5", 62), Options{}, "", ReasonTooLong},

	// Letters and other characters in phone numbers.
	{phone, "1-800-FLOWERS", us, "", ReasonLetters},
	{phone, "+1 415 555 2671 ext. 12", Options{}, "", ReasonLetters},
	{phone, "+1 415 555 2671 x12", Options{}, "", ReasonLetters},
	{phone, "tel:+1-415-555-2671", Options{}, "", ReasonLetters},
	{phone, "+1 415 555 2671#12", Options{}, "", ReasonBadChar},
	{phone, "+1 415 555 2671, +1 415 555 2672", Options{}, "", ReasonBadChar},
	{phone, "1+415 555 2671", us, "", ReasonBadChar},
	{phone, "(+1) 415 555 2671", Options{}, "", ReasonBadChar},
	{phone, "+1 415 555 २६७१", Options{}, "", ReasonBadChar}, // Devanagari digits
	{phone, "+1 415\x00555 2671", Options{}, "", ReasonControlChar},

	// Opaque ids.
	{id, "User-42", Options{}, "User-42", ""},
	{id, "ABC def", Options{}, "ABC def", ""},
	{id, "cafe\u0301", Options{}, "cafe\u0301", ""}, // not normalized
	{id, "a\x00b", Options{}, "", ReasonControlChar},
	{id, "a\x1bb", Options{}, "", ReasonControlChar},
	{id, "a\xffb", Options{}, "", ReasonInvalidUTF8},
	{id, strings.Repeat("x", 256), Options{}, strings.Repeat("x", 256), ""},
	{id, strings.Repeat("x", 257), Options{}, "", ReasonTooLong},

	// Unknown kinds.
	{0, "bob@example.com", Options{}, "", ReasonUnknownKind},
	{9, "bob@example.com", Options{}, "", ReasonUnknownKind},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		got, err := Parse(tt.kind, tt.raw, tt.opts)
		if tt.err != "" {
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("Parse(%v, %q, %+v) = %q, %v; want reason %s", tt.kind, tt.raw, tt.opts, got.Canonical, err, tt.err)
				continue
			}
			if e.Reason != tt.err || e.Kind != tt.kind {
				t.Errorf("Parse(%v, %q, %+v): got %v %s, want %v %s", tt.kind, tt.raw, tt.opts, e.Kind, e.Reason, tt.kind, tt.err)
			}
			if got != (Identifier{}) {
				t.Errorf("Parse(%v, %q): non-zero Identifier with an error", tt.kind, tt.raw)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%v, %q, %+v): %v", tt.kind, tt.raw, tt.opts, err)
			continue
		}
		if got.Kind != tt.kind {
			t.Errorf("Parse(%v, %q): Kind = %v", tt.kind, tt.raw, got.Kind)
		}
		if tt.want == "" { // pre-hashed
			d, _ := hex.DecodeString(TrimSpace(tt.raw))
			if !got.Prehashed || got.Canonical != "" || !bytesEqual(got.Digest[:], d) {
				t.Errorf("Parse(%v, %q) = %+v (%q, %x); want pre-hashed %x", tt.kind, tt.raw, got, got.Canonical, got.Digest, d)
			}
			continue
		}
		if got.Canonical != tt.want || got.Prehashed {
			t.Errorf("Parse(%v, %q, %+v) = %q (prehashed %v), want %q", tt.kind, tt.raw, tt.opts, got.Canonical, got.Prehashed, tt.want)
		}
		if got.Digest != sha256.Sum256([]byte(tt.want)) {
			t.Errorf("Parse(%v, %q): Digest is not SHA-256 of the canonical form", tt.kind, tt.raw)
		}
		// Canonical forms are fixed points.
		again, err := Parse(tt.kind, got.Canonical, tt.opts)
		if err != nil || again != got {
			t.Errorf("Parse(%v, %q) is not idempotent: %q, %v", tt.kind, got.Canonical, again.Canonical, err)
		}
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// The hex SHA-256 that an advertiser uploads to ad platforms today matches
// the plain value it was computed from.
func TestPrehashedMatchesPlain(t *testing.T) {
	for _, tt := range []struct {
		kind      psi.Kind
		plain     string
		opts      Options
		canonical string
	}{
		{email, " Bob.Smith@Example.COM ", Options{}, "bob.smith@example.com"},
		{email, "bob@Bücher.example", Options{}, "bob@xn--bcher-kva.example"},
		{email, "B.o.b+ads@googlemail.com", gmail, "bob@gmail.com"},
		{phone, "(415) 555-2671", us, "+14155552671"},
	} {
		plain, err := Parse(tt.kind, tt.plain, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(tt.canonical))
		for _, h := range []string{hex.EncodeToString(sum[:]), strings.ToUpper(hex.EncodeToString(sum[:]))} {
			pre, err := Parse(tt.kind, h, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !pre.Prehashed || pre.Digest != plain.Digest {
				t.Errorf("%v %q: pre-hashed digest %x does not match plain digest %x", tt.kind, tt.plain, pre.Digest, plain.Digest)
			}
		}
	}
}

// Identifiers never appear in errors: every message is the fixed text of
// its reason, and none contains the input.
func TestErrorsDoNotContainInput(t *testing.T) {
	for _, tt := range parseTests {
		if tt.err == "" {
			continue
		}
		_, err := Parse(tt.kind, tt.raw, tt.opts)
		msg := err.Error()
		if v := TrimSpace(tt.raw); len(v) >= 4 && strings.Contains(msg, v) {
			t.Errorf("error for %q contains the input: %s", tt.raw, msg)
		}
		if _, ok := reasonText[tt.err]; !ok {
			t.Errorf("reason %q has no text", tt.err)
		}
		if want := "ident: " + tt.kind.String() + ": " + reasonText[tt.err]; msg != want {
			t.Errorf("error = %q, want %q", msg, want)
		}
		if msg != strings.ToLower(msg) {
			t.Errorf("error %q is not lowercase", msg)
		}
	}
}

// An Identifier never prints or encodes its value.
func TestIdentifierRedacted(t *testing.T) {
	x, err := Parse(email, "secret.person@example.com", Options{})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := struct {
		ID  Identifier
		Ptr *Identifier
	}{x, &x}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, x), fmt.Sprintf(verb, &x), fmt.Sprintf(verb, wrapped))
	}
	outs = append(outs, fmt.Sprint(x), fmt.Sprintln(&x), x.String())
	j, err := json.Marshal(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	digest := hex.EncodeToString(x.Digest[:])
	for _, out := range outs {
		if strings.Contains(out, "secret") || strings.Contains(strings.ToLower(out), digest[:16]) || strings.Contains(out, fmt.Sprint(x.Digest[0:4])) {
			t.Errorf("output leaks the identifier: %s", out)
		}
	}
	if got, want := x.String(), "ident.Identifier{kind=email}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	pre, _ := Parse(phone, strings.Repeat("ab", 32), Options{})
	if got, want := fmt.Sprint(pre), "ident.Identifier{kind=phone prehashed}"; got != want {
		t.Errorf("Sprint(pre-hashed) = %q, want %q", got, want)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, r := range []string{"", "US", "us", "GB", "DE"} {
		if err := (Options{DefaultRegion: r}).Validate(); err != nil {
			t.Errorf("Validate(%q): %v", r, err)
		}
	}
	for _, r := range []string{"XX", "USA", "U", "001", "ZZ"} {
		if err := (Options{DefaultRegion: r}).Validate(); err == nil {
			t.Errorf("Validate(%q) succeeded", r)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	for _, bb := range []struct {
		name string
		kind psi.Kind
		raw  string
		opts Options
	}{
		{"Email/ASCII", email, " Bob.Smith@Example.com ", Options{}},
		{"Email/IDN", email, "jöran@bücher.example", Options{}},
		{"Email/Prehashed", email, strings.Repeat("ab", 32), Options{}},
		{"Phone/National", phone, "(415) 555-2671", us},
		{"Phone/International", phone, "+44 20 7946 0958", Options{}},
		{"ID", id, "user-42", Options{}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bb.kind, bb.raw, bb.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
