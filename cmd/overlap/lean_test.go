package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The advertiser's client library and the advertiser's build of overlap
// (go build -tags advertiser) link no server code: no SQL driver, no
// store, no metrics, no plotting, no bench harness.
func TestAdvertiserBuildLinksNoServerCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	forbidden := []string{
		"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/prometheus/", "gonum.org/",
		"github.com/overlap-psi/overlap/psi/store", "github.com/overlap-psi/overlap/bench",
	}
	// The service's generated messages are the wire contract both sides
	// share; the service itself is the server.
	const server = "github.com/overlap-psi/overlap/psi/service"
	for _, args := range [][]string{
		{"list", "-deps", "github.com/overlap-psi/overlap/psi/client"},
		{"list", "-deps", "-tags", "advertiser", "github.com/overlap-psi/overlap/cmd/overlap"},
	} {
		out, err := exec.Command("go", args...).Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 20 {
			t.Fatalf("go %s listed only %d packages", strings.Join(args, " "), len(deps))
		}
		for _, d := range deps {
			if d == server {
				t.Errorf("go %s: links %s", strings.Join(args, " "), d)
			}
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("go %s: links %s", strings.Join(args, " "), d)
				}
			}
		}
	}
}
