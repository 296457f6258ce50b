package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/service"
)

func matchCommand() *cli.Command {
	return &cli.Command{
		Name:      "match",
		Usage:     "advertiser: count how many identifiers of a list the platform holds, privately",
		ArgsUsage: "FILE",
		Description: "Reads a list of identifiers of one kind (CSV, TXT or JSONL; - is stdin),\n" +
			"canonicalizes each (SPEC.md §7), reports rejected rows with their line numbers on\n" +
			"stderr, drops duplicates, and runs one session with the platform's overlap serve.\n" +
			"The platform learns the list size only; this command learns the overlap and the\n" +
			"platform's consented set size rounded up to a public bucket, and prints the\n" +
			"consent snapshot the platform used.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Usage: "the platform's overlap serve, HOST:PORT", EnvVars: []string{"OVERLAP_SERVER"}, Value: "localhost:8443"},
			&cli.StringFlag{Name: "api-key", Usage: "API key from the platform (ovl_…); prefer OVERLAP_API_KEY or --api-key-file over the command line", EnvVars: []string{"OVERLAP_API_KEY"}},
			&cli.StringFlag{Name: "api-key-file", Usage: "file holding the API key", EnvVars: []string{"OVERLAP_API_KEY_FILE"}},
			&cli.StringFlag{Name: "kind", Usage: "identifier kind: email, phone or id", Value: "email"},
			&cli.StringFlag{Name: "column", Usage: "CSV header name or 1-based column number, or JSONL key (default: the kind's name)"},
			regionFlag, formatFlag, maxRejectsFlag,
			&cli.StringFlag{Name: "ca", Usage: "CA certificate (PEM) to trust for the server (default: the system's roots)", EnvVars: []string{"OVERLAP_CA"}},
			&cli.StringFlag{Name: "cert", Usage: "client certificate (PEM), when the platform authenticates advertisers by certificate", EnvVars: []string{"OVERLAP_CLIENT_CERT"}},
			&cli.StringFlag{Name: "key", Usage: "private key (PEM) of --cert", EnvVars: []string{"OVERLAP_CLIENT_KEY"}},
			&cli.BoolFlag{Name: "gmail", Usage: "apply the optional Gmail rule (SPEC.md §7.4) when the platform does"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON on stdout"},
			&cli.BoolFlag{Name: "policy", Usage: "only show the limits the platform applies to this advertiser (no FILE, no session)"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 2 * time.Hour},
		},
		Action: match,
	}
}

// matchOutput is what --json prints.
type matchOutput struct {
	Overlap         int     `json:"overlap"`
	ListSize        int     `json:"list_size"`
	MatchRate       float64 `json:"match_rate"`
	ServerSetBucket int     `json:"server_set_bucket"`
	Snapshot        struct {
		Version int64     `json:"version"`
		Digest  string    `json:"digest"`
		TakenAt time.Time `json:"taken_at"`
	} `json:"snapshot"`
	FalsePositiveBound float64 `json:"false_positive_bound"`
	Session            string  `json:"session"`
	Rows               int     `json:"rows"`
	Duplicates         int     `json:"duplicates"`
	Rejected           int     `json:"rejected"`
	ElapsedSeconds     float64 `json:"elapsed_seconds"`
	BytesSent          int64   `json:"bytes_sent"`
	BytesReceived      int64   `json:"bytes_received"`
}

func match(c *cli.Context) error {
	if c.Bool("policy") {
		return showPolicy(c)
	}
	if c.NArg() > 1 && strings.HasPrefix(c.Args().Get(1), "-") {
		return withHint(errors.New("match: flags after FILE are not read"), "put the flags before FILE: overlap match [flags] FILE")
	}
	if c.NArg() != 1 {
		return withHint(errors.New("match takes one FILE"), "overlap match --server HOST:PORT --api-key-file acme.key --kind email customers.csv")
	}
	path := c.Args().First()
	kind, err := psi.ParseKind(c.String("kind"))
	if err != nil {
		return withHint(err, "use --kind email, phone or id")
	}
	opts, err := identOptions(c)
	if err != nil {
		return err
	}
	format, err := fileFormat(c, path)
	if err != nil {
		return err
	}
	var flags uint16
	if c.Bool("gmail") {
		opts.GmailNormalize = true
		flags = 1 // SPEC.md §7.4 bit 0
	}
	client, err := newMatchClient(c)
	if err != nil {
		return err
	}
	defer client.Close()

	// Read the list.
	in, finish, err := openInput(path, "reading", c.App.ErrWriter)
	if err != nil {
		return err
	}
	rejects := &rejectPrinter{w: c.App.ErrWriter, file: path}
	list, err := idfile.ReadList(in, idfile.ListOptions{Format: format, Kind: kind, Column: c.String("column"),
		Ident: opts, MaxRejects: c.Int(maxRejectsFlag.Name)}, rejects.add)
	finish()
	rejects.summary()
	if err != nil {
		if errors.Is(err, idfile.ErrTooManyRejects) {
			return withHint(fmt.Errorf("reading %s: %w", path, err), "fix the rows above, or raise --max-rejects")
		}
		return withHint(fmt.Errorf("reading %s: %w", path, err), "pick the column with --column NAME or a 1-based number")
	}
	fmt.Fprintf(c.App.ErrWriter, "overlap: %s: %d rows, %d distinct identifiers, %d duplicates, %d rejected\n",
		path, list.Rows, list.Accepted, list.Duplicates, list.Rejected)
	if list.Accepted == 0 {
		return withHint(errors.New("no valid identifier in the list"), "check --kind and --column; rejected rows are listed above")
	}

	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	req := service.MatchRequest{Kind: kind, CanonFlags: flags, Digests: list.Digests}
	var bar *progressbar.ProgressBar
	if isTerminal(c.App.ErrWriter) && list.Accepted >= 50_000 {
		bar = progressbar.NewOptions(2*list.Accepted, progressbar.OptionSetWriter(c.App.ErrWriter),
			progressbar.OptionSetDescription("matching"), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(), progressbar.OptionShowCount())
		req.Progress = func(p service.Progress) {
			switch p.Phase {
			case "sending":
				bar.Set(p.Done)
			case "receiving":
				bar.Set(p.Total + p.Done)
			}
		}
	}
	res, err := client.Match(ctx, req)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return matchError(err, c.String("server"))
	}

	out := matchOutput{Overlap: res.Overlap, ListSize: res.ClientSize, MatchRate: float64(res.Overlap) / float64(res.ClientSize),
		ServerSetBucket: res.ServerSize, FalsePositiveBound: res.FalsePositive, Session: res.SessionID,
		Rows: list.Rows, Duplicates: list.Duplicates, Rejected: list.Rejected, ElapsedSeconds: res.Elapsed.Seconds(),
		BytesSent: res.Traffic.WireBytesSent, BytesReceived: res.Traffic.WireBytesReceived}
	out.Snapshot.Version, out.Snapshot.Digest, out.Snapshot.TakenAt = res.Snapshot.Version, hex.EncodeToString(res.Snapshot.Digest[:]), res.Snapshot.TakenAt
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(w, "overlap:           %d of %d identifiers (%.1f%%)\n", out.Overlap, out.ListSize, 100*out.MatchRate)
	fmt.Fprintf(w, "list size:         %d distinct identifiers (%d rows, %d duplicates, %d rejected)\n", out.ListSize, out.Rows, out.Duplicates, out.Rejected)
	fmt.Fprintf(w, "platform set:      %d, its consented set rounded up to a public bucket\n", out.ServerSetBucket)
	fmt.Fprintf(w, "consent snapshot:  v%d, digest %s, taken %s\n", out.Snapshot.Version, out.Snapshot.Digest, out.Snapshot.TakenAt.Format(time.RFC3339))
	fmt.Fprintf(w, "session:           %s, %.2fs, %d bytes sent, %d received; expected false matches ≤ %.0e\n",
		out.Session, out.ElapsedSeconds, out.BytesSent, out.BytesReceived, out.FalsePositiveBound)
	return nil
}

// matchError adds a hint to what went wrong talking to the server.
func matchError(err error, server string) error {
	if r, ok := service.RefusalOf(err); ok {
		msg := errors.New(connectMessage(err))
		switch r.Limit {
		case service.LimitMinListSize:
			return withHint(msg, "the platform needs a larger list: add identifiers, or ask it to lower your minimum (overlap advertisers set --min-list)")
		case service.LimitMaxListSize:
			return withHint(msg, "split the list, or ask the platform to raise your maximum (overlap advertisers set --max-list)")
		case service.LimitBudget:
			if r.ResetsAt.IsZero() {
				return withHint(msg, "the list is larger than your whole budget: split it, or ask the platform to raise it (overlap advertisers set --budget)")
			}
			return withHint(msg, "your identifier budget frees enough room at %s (in %s); or ask the platform to raise it",
				r.ResetsAt.Local().Format(time.RFC1123), roughly(time.Until(r.ResetsAt)))
		case service.LimitAdvertiserSessions:
			return withHint(msg, "one session at a time per advertiser: wait for the other to finish")
		case service.LimitServerSessions:
			return withHint(msg, "the platform is busy: retry in a minute")
		case service.LimitCanonicalization:
			return withHint(msg, "drop --gmail unless the platform applies the Gmail rule too")
		}
		return msg
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   *tls.CertificateVerificationError
		opErr     *net.OpError
	)
	switch {
	case connect.CodeOf(err) == connect.CodeUnauthenticated:
		return withHint(errors.New(connectMessage(err)), "check --api-key: use the ovl_… key that overlap advertisers add printed for you")
	case connect.CodeOf(err) == connect.CodePermissionDenied:
		return withHint(errors.New(connectMessage(err)), "the platform revoked or does not know these credentials: ask it for a new key")
	case errors.As(err, &unknownCA):
		return withHint(fmt.Errorf("the server's certificate is not trusted: %w", err),
			"pass --ca FILE with the platform's CA certificate (for overlap serve --dev-cert DIR, that is DIR/cert.pem)")
	case errors.As(err, &hostErr):
		return withHint(fmt.Errorf("the server's certificate is not for this address: %w", err),
			"connect with a host name the certificate names (a development certificate names localhost and 127.0.0.1)")
	case errors.As(err, &certErr):
		return withHint(fmt.Errorf("the server's certificate is not valid: %w", err), "pass --ca FILE with the platform's CA certificate")
	case errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &opErr) && opErr.Op == "dial":
		return withHint(fmt.Errorf("cannot reach the server at %s: %w", server, err),
			"check --server HOST:PORT, and that overlap serve is running there")
	case errors.Is(err, service.ErrBroken):
		return withHint(err, "retry: the server may have stopped or restarted during the session")
	case errors.Is(err, context.DeadlineExceeded):
		return withHint(err, "the session took longer than --timeout")
	}
	return err
}

func connectMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// roughly formats a wait for a person: minutes, hours or days.
func roughly(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", max(1, int(d.Minutes()+0.5)))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.0f hours", d.Hours())
	}
	return fmt.Sprintf("%.0f days", d.Hours()/24)
}

// newMatchClient builds the service client from the credential and TLS
// flags.
func newMatchClient(c *cli.Context) (*service.Client, error) {
	key := c.String("api-key")
	if f := c.String("api-key-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, withHint(err, "--api-key-file names the file overlap advertisers add --key-file wrote")
		}
		key = strings.TrimSpace(string(b))
	}
	if key != "" {
		if _, err := service.ParseAPIKey(key); err != nil {
			return nil, withHint(errors.New("the API key is malformed"), "an API key reads ovl_<12 hex digits>_<52 letters and digits>, as overlap advertisers add printed it")
		}
	} else if c.String("cert") == "" {
		return nil, withHint(errors.New("no credentials"), "pass --api-key-file FILE, set OVERLAP_API_KEY, or pass --cert and --key")
	}
	tlsCfg, err := service.ClientTLS(c.String("ca"), c.String("cert"), c.String("key"))
	if err != nil {
		return nil, withHint(err, "--ca, --cert and --key name PEM files")
	}

	client, err := service.NewClient(service.ClientConfig{Addr: c.String("server"), APIKey: key, TLS: tlsCfg})
	if err != nil {
		return nil, withHint(err, "--server takes HOST:PORT, such as localhost:8443")
	}
	return client, nil
}

// showPolicy prints the limits the platform applies to this advertiser.
func showPolicy(c *cli.Context) error {
	client, err := newMatchClient(c)
	if err != nil {
		return err
	}
	defer client.Close()
	p, err := client.Policy(c.Context)
	if err != nil {
		return matchError(err, c.String("server"))
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "advertiser:   %s\n", p.Advertiser)
	fmt.Fprintf(w, "list size:    %d to %d distinct identifiers per session\n", p.MinListSize, p.MaxListSize)
	fmt.Fprintf(w, "budget:       %d of %d identifiers used in the last %s\n", p.BudgetUsed, p.Budget, roughly(p.BudgetWindow))
	fmt.Fprintf(w, "kinds, modes: %s; %s\n", strings.Join(p.Kinds, ", "), strings.Join(p.Modes, ", "))
	return nil
}
