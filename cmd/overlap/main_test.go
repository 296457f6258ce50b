package main

import (
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite" // waitrows reads the store's SQLite files
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"overlap": func() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata/script, which assert on what
// a user sees on stdout and stderr. $SAMPLE is testdata/sample of the
// repository.
func TestScripts(t *testing.T) {
	sample, err := filepath.Abs(filepath.Join("..", "..", "testdata", "sample"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("SAMPLE", sample)
			// PORT and ADMINPORT are free loopback ports for overlap serve.
			for _, name := range []string{"PORT", "ADMINPORT"} {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return err
				}
				env.Setenv(name, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
				ln.Close()
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitrows DB TABLE N waits until the SQLite database DB has
			// committed at least N rows in TABLE: an import running in the
			// background has committed its first chunks.
			"waitrows": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 3 {
					ts.Fatalf("usage: waitrows DB TABLE N")
				}
				n, err := strconv.Atoi(args[2])
				ts.Check(err)
				db, err := sql.Open("sqlite", "file:"+ts.MkAbs(args[0])+"?mode=ro&_pragma=busy_timeout(1000)")
				ts.Check(err)
				defer db.Close()
				for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					var got int
					if db.QueryRow("SELECT count(*) FROM "+args[1]).Scan(&got) == nil && got >= n {
						return
					}
				}
				ts.Fatalf("%s: fewer than %d rows in %s after 60s", args[0], n, args[1])
			},
			// waitport HOST:PORT waits until something listens there.
			"waitport": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: waitport HOST:PORT")
				}
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if c, err := net.Dial("tcp", args[0]); err == nil {
						c.Close()
						return
					}
				}
				ts.Fatalf("nothing listens on %s", args[0])
			},
		},
	})
}
