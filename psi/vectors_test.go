package psi

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/wire"
)

func loadVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", name))
	if err != nil {
		t.Fatalf("%v (regenerate with go generate ./psi/)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedOf(t *testing.T, s string) [32]byte { return [32]byte(unhex(t, s)) }

// TestVectors replays testdata/vectors (SPEC.md §9).
func TestVectors(t *testing.T) {
	t.Run("hash_to_group", func(t *testing.T) {
		var vs []struct{ Kind, Canonical, Digest, Element string }
		loadVectors(t, "hash_to_group.json", &vs)
		for _, v := range vs {
			kind, err := ParseKind(v.Kind)
			if err != nil {
				t.Fatal(err)
			}
			if d := digest(v.Canonical); hex.EncodeToString(d[:]) != v.Digest {
				t.Errorf("digest of %q: got %x, want %s", v.Canonical, d, v.Digest)
			}
			e := r255.NewHasher(DST(kind)).Hash(r255.NewElement(), unhex(t, v.Digest))
			if got := hex.EncodeToString(e.Bytes()); got != v.Element {
				t.Errorf("H(%s, %s) = %s, want %s", v.Kind, v.Digest, got, v.Element)
			}
		}
	})

	t.Run("session", func(t *testing.T) {
		var vs []struct {
			Name, Kind                      string
			ClientSeed, SetSeed, ServerSeed string   `json:"-"`
			CS                              string   `json:"client_seed"`
			SS                              string   `json:"set_seed"`
			VS                              string   `json:"server_seed"`
			ChunkSize                       int      `json:"chunk_size"`
			ClientDigests                   []string `json:"client_digests"`
			ServerDigests                   []string `json:"server_digests"`
			Overlap                         int
			ClientHello                     string `json:"client_hello"`
			ServerParams                    string `json:"server_params"`
			Blinded, Evaluated              []string
			ServerSet                       []string `json:"server_set"`
		}
		loadVectors(t, "session.json", &vs)
		for _, v := range vs {
			kind, _ := ParseKind(v.Kind)
			var cd [][32]byte
			for _, d := range v.ClientDigests {
				cd = append(cd, [32]byte(unhex(t, d)))
			}
			set, err := NewSet(SetConfig{Kind: kind, Workers: 1, rand: mrand.NewChaCha8(seedOf(t, v.SS))})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range v.ServerDigests {
				set.Add([32]byte(unhex(t, d)))
			}
			set.Finish()
			c := must(NewClient(ClientConfig{Kind: kind, CanonVersion: 1, Workers: 1, rand: mrand.NewChaCha8(seedOf(t, v.CS))}, cd))
			s := must(NewServer(ServerConfig{CanonVersion: 1, ChunkSize: v.ChunkSize, Workers: 1, rand: mrand.NewChaCha8(seedOf(t, v.VS))}, set))

			check := func(what string, got []byte, want string) {
				t.Helper()
				if !bytes.Equal(got, unhex(t, want)) {
					t.Fatalf("%s: %s differs from the vector", v.Name, what)
				}
			}
			check("ClientHello", must(c.Hello().MarshalBinary()), v.ClientHello)
			var hello wire.ClientHello
			hello.UnmarshalBinary(unhex(t, v.ClientHello))
			params := must(s.ReceiveHello(&hello))
			check("ServerParams", must(params.MarshalBinary()), v.ServerParams)
			if err := c.ReceiveParams(params); err != nil {
				t.Fatal(err)
			}
			for i, want := range v.Blinded {
				ch, _, _ := c.NextBlinded()
				check("BlindedChunk", must(ch.MarshalBinary()), want)
				var in wire.ElementChunk
				if err := in.UnmarshalBinary(unhex(t, v.Blinded[i]), wire.TypeBlinded); err != nil {
					t.Fatal(err)
				}
				if err := s.ReceiveBlinded(&in); err != nil {
					t.Fatal(err)
				}
			}
			for _, want := range v.Evaluated {
				ch, _, _ := s.NextEvaluated()
				check("EvaluatedChunk", must(ch.MarshalBinary()), want)
				var in wire.ElementChunk
				in.UnmarshalBinary(unhex(t, want), wire.TypeEvaluated)
				if err := c.ReceiveEvaluated(&in); err != nil {
					t.Fatal(err)
				}
			}
			s.NextEvaluated()
			for _, want := range v.ServerSet {
				ch, _, _ := s.NextSetChunk()
				check("ServerSetChunk", must(ch.MarshalBinary()), want)
				var in wire.SetChunk
				in.UnmarshalBinary(unhex(t, want))
				if err := c.ReceiveSetChunk(&in); err != nil {
					t.Fatal(err)
				}
			}
			res, err := c.Result()
			if err != nil || res.Overlap != v.Overlap {
				t.Fatalf("%s: overlap %d (%v), want %d", v.Name, res.Overlap, err, v.Overlap)
			}
		}
	})

	t.Run("negative", func(t *testing.T) {
		var vs []struct{ Name, Expect, Hello, Message string }
		loadVectors(t, "negative.json", &vs)
		sentinels := map[string]error{
			"psi.ErrPeer": ErrPeer, "psi.ErrParams": ErrParams,
			"wire.ErrLength": wire.ErrLength, "wire.ErrVersion": wire.ErrVersion,
			"wire.ErrType": wire.ErrType, "wire.ErrLimit": wire.ErrLimit,
		}
		for _, v := range vs {
			want, ok := sentinels[v.Expect]
			if !ok {
				t.Fatalf("%s: unknown expectation %q", v.Name, v.Expect)
			}
			set := prepare(t, KindEmail, [][32]byte{digest("x")})
			s := must(NewServer(ServerConfig{CanonVersion: 1, ChunkSize: 3, MaxClientSize: 1000}, set))
			err := func() error {
				var hello wire.ClientHello
				if err := hello.UnmarshalBinary(unhex(t, v.Hello)); err != nil {
					return err
				}
				if _, err := s.ReceiveHello(&hello); err != nil {
					return err
				}
				var ch wire.ElementChunk
				if err := ch.UnmarshalBinary(unhex(t, v.Message), wire.TypeBlinded); err != nil {
					return err
				}
				return s.ReceiveBlinded(&ch)
			}()
			if !errors.Is(err, want) {
				t.Errorf("%s: got %v, want %s", v.Name, err, v.Expect)
			}
		}
	})
}
