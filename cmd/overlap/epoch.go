package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/wire"
)

// The advertiser's side of epochs (SPEC.md §10.12): the epoch key of each
// platform and kind lives in a file private to its owner, made by a setup
// and used by every epoch session until the epoch expires.

var epochDirFlag = &cli.StringFlag{
	Name:    "epoch-dir",
	Usage:   "where this side keeps its epoch keys (secret; files 0600, folder 0700)",
	EnvVars: []string{"OVERLAP_EPOCH_DIR"},
	Value:   defaultEpochDir(),
}

func defaultEpochDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "overlap", "epochs")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "overlap", "epochs")
	}
	return ".overlap-epochs"
}

// epochFile names the key file of one platform, credential and kind.
func epochFile(c *cli.Context, kind psi.Kind) string {
	who := c.String("cert")
	if k, err := client.ParseAPIKey(apiKeyOf(c)); err == nil {
		who = k.ID
	}
	h := sha256.Sum256([]byte(c.String("server") + "\x00" + who + "\x00" + kind.String()))
	return filepath.Join(c.String("epoch-dir"), hex.EncodeToString(h[:12])+".epoch")
}

// apiKeyOf returns the API key the flags name, or "".
func apiKeyOf(c *cli.Context) string {
	if f := c.String("api-key-file"); f != "" {
		if b, err := os.ReadFile(f); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return c.String("api-key")
}

// loadEpochKey returns the stored epoch key, or nil when there is none or
// it has expired (an expired file is removed).
func loadEpochKey(path string, now time.Time) (*psi.EpochKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var k psi.EpochKey
	if err := k.UnmarshalBinary(b); err != nil {
		return nil, withHint(fmt.Errorf("%s: %w", path, err), "remove the file; the next match makes a new setup")
	}
	if k.Expired(now.Add(time.Minute)) {
		os.Remove(path)
		k.Erase()
		return nil, nil
	}
	return &k, nil
}

// saveEpochKey writes the key to path, private to its owner, replacing an
// older epoch's key.
func saveEpochKey(path string, k *psi.EpochKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := k.MarshalBinary()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".epoch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// runSetup makes a setup with a progress bar (ETA, and the bytes it moves)
// and stores its key.
func runSetup(ctx context.Context, c *cli.Context, mc *client.Client, kind psi.Kind, path string) (*psi.EpochKey, client.SetupResult, error) {
	var (
		mu  sync.Mutex
		bar *progressbar.ProgressBar
	)
	req := client.SetupRequest{Kind: kind}
	if isTerminal(c.App.ErrWriter) {
		req.Progress = func(p client.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if bar == nil {
				bar = progressbar.NewOptions(2*p.Total, progressbar.OptionSetWriter(c.App.ErrWriter),
					progressbar.OptionSetDescription(fmt.Sprintf("setup: %d platform elements, about %s down and %s up",
						p.Total, humanBytes(int64(p.Total)*32), humanBytes(int64(p.Total)*17/4))),
					progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(),
					progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true))
			}
			if p.Phase == "raising" {
				bar.Set(p.Done)
			} else {
				bar.Set(p.Total + p.Done)
			}
		}
	}
	fmt.Fprintf(c.App.ErrWriter, "overlap: no current epoch for this platform and kind: making a setup (the platform's set, once per epoch)\n")
	res, err := mc.Setup(ctx, req)
	mu.Lock()
	if bar != nil {
		bar.Finish()
	}
	mu.Unlock()
	if err != nil {
		return nil, res, matchError(c.Context, err, c.String("server"), mc, wire.ModeEpochSetup)
	}
	if err := saveEpochKey(path, res.Key); err != nil {
		res.Key.Erase()
		return nil, res, fmt.Errorf("storing the epoch key: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "overlap: setup done in %s: epoch %x, %d platform elements, %s sent, %s received; sessions until %s\n",
		res.Elapsed.Round(time.Second), res.Key.ID[:4], res.Key.ServerSize,
		humanBytes(res.Traffic.WireBytesSent), humanBytes(res.Traffic.WireBytesReceived), res.Key.ExpiresAt.Format(time.RFC3339))
	return res.Key, res, nil
}

// matchEpoch runs an epoch session, making a setup first when this side has
// no current epoch (or the platform no longer has it), and prints the
// release with the epoch's consent terms.
func matchEpoch(ctx context.Context, c *cli.Context, mc *client.Client, req client.MatchRequest, lo listOutput) error {
	path := epochFile(c, req.Kind)
	key, err := loadEpochKey(path, time.Now())
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if key == nil {
			if key, _, err = runSetup(ctx, c, mc, req.Kind, path); err != nil {
				return err
			}
		}
		res, err := mc.MatchEpoch(ctx, key, req)
		if ref, ok := client.RefusalOf(err); ok && ref.Limit == client.LimitEpoch && attempt == 0 {
			fmt.Fprintf(c.App.ErrWriter, "overlap: the platform no longer serves epoch %x (%s): making a new setup\n", key.ID[:4], connectMessage(err))
			os.Remove(path)
			key.Erase()
			key = nil
			continue
		}
		if err != nil {
			return matchError(c.Context, err, c.String("server"), mc, wire.ModeEpochSession)
		}
		defer key.Erase()
		return printEpochRelease(c, res, key, lo)
	}
}

func printEpochRelease(c *cli.Context, res client.PrivateMatchResult, key *psi.EpochKey, lo listOutput) error {
	r := res.Result
	m := r.Mechanism
	out := privateOutputOf(wire.ModeEpochSession, res, lo)
	out.Epoch, out.EpochExpiresAt = hex.EncodeToString(key.ID[:]), key.ExpiresAt
	w := c.App.Writer
	if c.Bool("json") {
		return printJSON(w, out)
	}
	fmt.Fprintf(w, "overlap:           %s\n", releaseText(r))
	fmt.Fprintf(w, "noise:             %s (differentially private; the platform released only this)\n", mechanismText(m))
	printList(w, lo)
	fmt.Fprintf(w, "epoch:             %x, platform set of %d elements with ringers; counts consent as of the snapshot below,\n"+
		"                   so a withdrawal since then still counts until the epoch ends at %s\n",
		key.ID[:4], key.ServerSize, key.ExpiresAt.Format(time.RFC3339))
	printSnapshot(w, out.Snapshot)
	fmt.Fprintf(w, "session:           %s, %.2fs, %d bytes sent, %d received\n",
		out.Session, out.ElapsedSeconds, out.BytesSent, out.BytesReceived)
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// setupCommand makes a setup explicitly (match --mode epoch makes one when
// it needs one).
func setupCommand() *cli.Command {
	return &cli.Command{
		Name:  "setup",
		Usage: "advertiser: make an epoch with the platform now, for --mode epoch sessions",
		Description: "Downloads the platform's consented set of one kind once, raises it under a fresh\n" +
			"epoch key and returns it as short tags (SPEC.md §10.12): about 32 bytes down and\n" +
			"4.2 up per platform element, and one scalar multiplication each. The epoch's key\n" +
			"is kept in --epoch-dir (secret, 0600). Until the epoch ends (24 h by default,\n" +
			"shown), match --mode epoch sessions send only the list: their cost grows with\n" +
			"the list, not with the platform's set. Sessions of an epoch count consent as of\n" +
			"the setup: a withdrawal since then counts until the epoch ends.\n" +
			"match --mode epoch makes a setup by itself when it needs one.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Usage: "the platform's overlap serve, HOST:PORT", EnvVars: []string{"OVERLAP_SERVER"}, Value: "localhost:8443"},
			&cli.StringFlag{Name: "api-key", Usage: "API key from the platform (ovl_…)", EnvVars: []string{"OVERLAP_API_KEY"}},
			&cli.StringFlag{Name: "api-key-file", Usage: "file holding the API key", EnvVars: []string{"OVERLAP_API_KEY_FILE"}},
			&cli.StringFlag{Name: "kind", Usage: "identifier kind: email, phone or id", Value: "email"},
			&cli.StringFlag{Name: "ca", Usage: "CA certificate (PEM) to trust for the server", EnvVars: []string{"OVERLAP_CA"}},
			&cli.StringFlag{Name: "cert", Usage: "client certificate (PEM)", EnvVars: []string{"OVERLAP_CLIENT_CERT"}},
			&cli.StringFlag{Name: "key", Usage: "private key (PEM) of --cert", EnvVars: []string{"OVERLAP_CLIENT_KEY"}},
			epochDirFlag, suiteFlag,
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 6 * time.Hour},
		},
		Action: func(c *cli.Context) error {
			kind, err := psi.ParseKind(c.String("kind"))
			if err != nil {
				return withHint(err, "use --kind email, phone or id")
			}
			mc, err := newMatchClient(c)
			if err != nil {
				return err
			}
			defer mc.Close()
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			key, _, err := runSetup(ctx, c, mc, kind, epochFile(c, kind))
			if err != nil {
				return err
			}
			key.Erase()
			return nil
		},
	}
}
