package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/wire"
)

func matchCommand() *cli.Command {
	return &cli.Command{
		Name:      "match",
		Usage:     "advertiser: count how many identifiers of a list the platform holds, privately",
		ArgsUsage: "FILE",
		Description: "Reads a list of identifiers of one kind (CSV, TXT or JSONL; - is stdin),\n" +
			"canonicalizes each (SPEC.md §7), reports every rejected row with its line number\n" +
			"on stderr (the first 100; all of them with --rejects OUT), drops duplicates, and\n" +
			"runs one session with the platform's overlap serve on the valid identifiers, in\n" +
			"one of two modes (SPEC.md §2). A CSV row is one line: a malformed line (a stray\n" +
			"quote) is one rejected row. With --strict the first rejected row stops match\n" +
			"before it contacts the platform.\n\n" +
			"  --mode private (the default, and the platform's default for new advertisers):\n" +
			"    the platform counts and releases only a noised, differentially private count\n" +
			"    with its 95% interval, or \"under T\" below its threshold; it learns the list\n" +
			"    size and the exact overlap. This side's work grows with the platform's set\n" +
			"    (SPEC.md §10), and each session spends ε of the advertiser's privacy budget.\n" +
			"  --mode epoch: private mode at platform scale (SPEC.md §10.12). Once per epoch\n" +
			"    (24 h by default) a setup downloads the platform's set and returns it as tags\n" +
			"    (made by itself when needed, or by overlap setup); then each session sends\n" +
			"    only the list. The platform can link the list's identifiers across the\n" +
			"    epoch's sessions (not to people), and a withdrawal counts until the epoch ends.\n" +
			"  --mode exact: this side counts and learns the exact overlap; the platform\n" +
			"    learns the list size only (SPEC.md §4).\n\n" +
			"Both print the platform's set size rounded up to a public bucket and the consent\n" +
			"snapshot the platform used. The platform chooses which modes it serves each\n" +
			"advertiser; --policy shows them.\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Usage: "the platform's overlap serve, HOST:PORT", EnvVars: []string{"OVERLAP_SERVER"}, Value: "localhost:8443"},
			&cli.StringFlag{Name: "api-key", Usage: "API key from the platform (ovl_…); prefer OVERLAP_API_KEY or --api-key-file over the command line", EnvVars: []string{"OVERLAP_API_KEY"}},
			&cli.StringFlag{Name: "api-key-file", Usage: "file holding the API key", EnvVars: []string{"OVERLAP_API_KEY_FILE"}},
			&cli.StringFlag{Name: "mode", Usage: "private (the platform counts and releases a noised count), epoch (the same, with a setup once per epoch; sessions cost what the list costs) or exact (this side counts)", EnvVars: []string{"OVERLAP_MODE"}, Value: "private"},
			epochDirFlag, suiteFlag,
			&cli.StringFlag{Name: "kind", Usage: "identifier kind: email, phone or id", Value: "email"},
			&cli.StringFlag{Name: "column", Usage: "CSV header name or 1-based column number, or JSONL key (default: the kind's name)"},
			regionFlag, formatFlag, maxRejectsFlag, strictFlag, rejectsFlag, rejectsWithValuesFlag,
			&cli.StringFlag{Name: "ca", Usage: "CA certificate (PEM) to trust for the server (default: the system's roots)", EnvVars: []string{"OVERLAP_CA"}},
			&cli.StringFlag{Name: "cert", Usage: "client certificate (PEM), when the platform authenticates advertisers by certificate", EnvVars: []string{"OVERLAP_CLIENT_CERT"}},
			&cli.StringFlag{Name: "key", Usage: "private key (PEM) of --cert", EnvVars: []string{"OVERLAP_CLIENT_KEY"}},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON on stdout"},
			&cli.BoolFlag{Name: "policy", Usage: "only show the limits the platform applies to this advertiser (no FILE, no session)"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 2 * time.Hour},
		},
		Action: match,
	}
}

// suiteFlag is the ciphersuites the advertiser's client offers.
var suiteFlag = &cli.StringFlag{Name: "suite", EnvVars: []string{"OVERLAP_SUITE"}, Value: "2,1",
	Usage: "ciphersuites to offer (SPEC.md §12): 2 (curve25519 with the X25519 ladder, faster), 1 (ristretto255), or 2,1 for both; the platform chooses among those offered. An epoch's sessions use the epoch's suite"}

// snapshotOutput is the consent snapshot in --json.
type snapshotOutput struct {
	Kind    string    `json:"kind,omitempty"` // in a customer file's snapshots, one per kind
	Version int64     `json:"version"`
	Digest  string    `json:"digest"`
	TakenAt time.Time `json:"taken_at"`
}

func snapshotOf(s client.Snapshot) snapshotOutput {
	out := snapshotOutput{Version: s.Version, Digest: hex.EncodeToString(s.Digest[:]), TakenAt: s.TakenAt}
	if s.Kind != 0 {
		out.Kind = s.Kind.String()
	}
	return out
}

// snapshotsOf is a record session's snapshot of each kind, nil for others.
func snapshotsOf(snaps []client.Snapshot) []snapshotOutput {
	var out []snapshotOutput
	for _, s := range snaps {
		out = append(out, snapshotOf(s))
	}
	return out
}

// listOutput and sessionOutput are the parts of --json both modes share.
type listOutput struct {
	ListSize   int `json:"list_size"` // distinct identifiers, or customers of a customer file
	Rows       int `json:"rows"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	// A customer file's (SPEC.md §13.8): the bad cells, the slots per
	// customer (its identifier columns) and the kinds of its columns.
	BadCells int    `json:"bad_cells,omitempty"`
	Slots    int    `json:"slots,omitempty"`
	Kinds    string `json:"kinds,omitempty"`
}

// unit names what the list counts: identifiers, or customers.
func (lo listOutput) unit() string {
	if lo.Slots > 0 {
		return "customers"
	}
	return "identifiers"
}

// elements is what the session sends: one element per identifier, or s
// per customer (SPEC.md §13.2).
func (lo listOutput) elements() int { return lo.ListSize * max(lo.Slots, 1) }

type sessionOutput struct {
	Session        string  `json:"session"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	BytesSent      int64   `json:"bytes_sent"`
	BytesReceived  int64   `json:"bytes_received"`
}

// matchOutput is what --json prints in exact mode.
type matchOutput struct {
	Mode            string           `json:"mode"`
	Overlap         int              `json:"overlap"`
	MatchRate       float64          `json:"match_rate"`
	ServerSetBucket int              `json:"server_set_bucket"`
	Snapshot        snapshotOutput   `json:"snapshot"`
	Snapshots       []snapshotOutput `json:"snapshots,omitempty"` // a customer file's, one per kind
	listOutput
	FalsePositiveBound float64 `json:"false_positive_bound"`
	sessionOutput
}

// privateOutput is what --json prints in private mode: the release and
// its parameters, never more than the platform released.
type privateOutput struct {
	Mode        string `json:"mode"`
	Below       bool   `json:"below"`     // the noised count was under the threshold
	Count       int    `json:"count"`     // the noised count; 0 when below
	Low         int    `json:"low"`       // 95% interval for the true overlap
	High        int    `json:"high"`      //
	Threshold   int    `json:"threshold"` // T
	Mechanism   string `json:"mechanism"`
	Epsilon     string `json:"epsilon"` // ε as a fraction, "1/2"
	Sensitivity uint32 `json:"sensitivity"`
	// ServerSetBucket is N: the platform's consented set plus its ringers,
	// rounded up to a public bucket.
	ServerSetBucket int              `json:"server_set_bucket"`
	Snapshot        snapshotOutput   `json:"snapshot"`
	Snapshots       []snapshotOutput `json:"snapshots,omitempty"` // a customer file's, one per kind
	// Epoch and EpochExpiresAt: an epoch session's epoch, and when it
	// ends (withdrawals since its snapshot count until then).
	Epoch          string    `json:"epoch,omitempty"`
	EpochExpiresAt time.Time `json:"epoch_expires_at,omitzero"`
	listOutput
	sessionOutput
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
	mode, err := parseMode(c.String("mode"))
	if err != nil {
		return err
	}
	if mode == wire.ModeExact {
		fmt.Fprintln(c.App.ErrWriter, "overlap: note: exact mode: you learn the exact overlap, so a platform serves it only to advertisers under contract\n"+
			"overlap: note: (an exact count of a crafted list tells whether a chosen person is on the platform; SECURITY.md)")
	}
	kind, err := psi.ParseKind(c.String("kind"))
	if err != nil {
		return withHint(err, "use --kind email, phone or id")
	}
	mc, err := newMatchClient(c)
	if err != nil {
		return err
	}
	defer mc.Close()
	in, err := openMatchInput(c, path)
	if err != nil {
		return err
	}
	defer in.finish()
	if in.customers {
		return matchRecords(c, mc, path, in, mode)
	}
	list, rejects, err := readMatchList(c, path, kind, in.r)
	if err != nil {
		return err
	}
	defer rejects.close()

	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	req := client.MatchRequest{Kind: kind, Digests: list.Digests}
	lo := listOutput{ListSize: list.Accepted, Rows: list.Rows, Duplicates: list.Duplicates, Rejected: list.Rejected}
	if mode == wire.ModeEpochSession {
		if err := matchEpoch(ctx, c, mc, req, lo); err != nil {
			return err
		}
		return rejects.err()
	}
	if mode == wire.ModePrivate {
		if err := matchPrivate(ctx, c, mc, req, lo); err != nil {
			return err
		}
		return rejects.err() // exit status 3 when rows were rejected
	}

	if err := matchExact(ctx, c, mc, req, lo); err != nil {
		return err
	}
	return rejects.err() // exit status 3 when rows were rejected
}

// matchExact runs an exact-mode session (SPEC.md §4) and prints the overlap.
func matchExact(ctx context.Context, c *cli.Context, mc *client.Client, req client.MatchRequest, lo listOutput) error {
	var bar *progressbar.ProgressBar
	if isTerminal(c.App.ErrWriter) && lo.elements() >= 50_000 {
		bar = newBar(c.App.ErrWriter, 2*lo.elements())
		req.Progress = func(p client.Progress) {
			switch p.Phase {
			case "sending":
				bar.Set(p.Done)
			case "receiving":
				bar.Set(p.Total + p.Done)
			}
		}
	}
	res, err := mc.Match(ctx, req)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return matchError(c.Context, err, c.String("server"), mc, wire.ModeExact)
	}

	out := matchOutput{Mode: wire.ModeExact.String(), Overlap: res.Overlap, MatchRate: float64(res.Overlap) / float64(res.ClientSize),
		ServerSetBucket: res.ServerSize, Snapshot: snapshotOf(res.Snapshot), Snapshots: snapshotsOf(res.Snapshots),
		FalsePositiveBound: res.FalsePositive, listOutput: lo,
		sessionOutput: sessionOutput{Session: res.SessionID, ElapsedSeconds: res.Elapsed.Seconds(),
			BytesSent: res.Traffic.WireBytesSent, BytesReceived: res.Traffic.WireBytesReceived}}
	out.ListSize = res.ClientSize
	w := c.App.Writer
	if c.Bool("json") {
		return printJSON(w, out)
	}
	fmt.Fprintf(w, "overlap:           %d of %d %s (%.1f%%)\n", out.Overlap, out.ListSize, lo.unit(), 100*out.MatchRate)
	printList(w, lo)
	fmt.Fprintf(w, "platform set:      %d, its consented set rounded up to a public bucket\n", out.ServerSetBucket)
	printSnapshots(w, out.Snapshot, out.Snapshots)
	fmt.Fprintf(w, "session:           %s, %.2fs, %d bytes sent, %d received; expected false matches ≤ %.0e\n",
		out.Session, out.ElapsedSeconds, out.BytesSent, out.BytesReceived, out.FalsePositiveBound)
	return nil
}

// readMatchList reads the advertiser's list, reporting rejected rows.
// --strict and --max-rejects stop the reader, through the reporter, before
// the platform is contacted. The caller closes the reporter (again: a
// second close does nothing) and returns its err at the end.
func readMatchList(c *cli.Context, path string, kind psi.Kind, in io.Reader) (_ idfile.ListResult, _ *rejectReporter, err error) {
	opts, err := identOptions(c)
	if err != nil {
		return idfile.ListResult{}, nil, err
	}
	format, err := fileFormat(c, path)
	if err != nil {
		return idfile.ListResult{}, nil, err
	}
	// Read the list. --strict and --max-rejects stop the reader, through
	// the reporter, before the platform is contacted.
	rejects, err := newRejectReporter(c, path)
	if err != nil {
		return idfile.ListResult{}, nil, err
	}
	defer func() {
		if err != nil {
			rejects.close()
		}
	}()
	list, err := idfile.ReadList(in, idfile.ListOptions{Format: format, Kind: kind, Column: c.String("column"),
		Ident: opts}, rejects.add)
	if cerr := rejects.close(); cerr != nil {
		return idfile.ListResult{}, nil, cerr
	}
	if err != nil {
		if errors.Is(err, idfile.ErrTooManyRejects) {
			return idfile.ListResult{}, nil, rejects.stopped(err)
		}
		return idfile.ListResult{}, nil, withHint(fmt.Errorf("reading %s: %w", path, err), "pick the column with --column NAME or a 1-based number")
	}
	fmt.Fprintf(c.App.ErrWriter, "overlap: %s: %d rows, %d distinct identifiers, %d duplicates, %d rejected\n",
		path, list.Rows, list.Accepted, list.Duplicates, list.Rejected)
	if list.Accepted == 0 {
		return idfile.ListResult{}, nil, withHint(errors.New("no valid identifier in the list"), "check --kind and --column; rejected rows are listed above")
	}
	return list, rejects, nil
}

// matchPrivate runs a private-mode session (SPEC.md §10) and prints the
// release: the noised count and its interval, or "under T".
func matchPrivate(ctx context.Context, c *cli.Context, mc *client.Client, req client.MatchRequest, lo listOutput) error {
	// The work is N raisings, n blindings and N returned elements; N is
	// known from the first progress report only.
	var (
		mu     sync.Mutex
		bar    *progressbar.ProgressBar
		n      = lo.elements()
		server int
	)
	if isTerminal(c.App.ErrWriter) {
		req.Progress = func(p client.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Phase == "raising" || p.Phase == "returning" {
				server = p.Total
			}
			if bar == nil {
				if 2*server+n < 50_000 {
					return
				}
				bar = newBar(c.App.ErrWriter, 2*server+n)
			}
			switch p.Phase {
			case "raising":
				bar.Set(p.Done)
			case "sending":
				bar.Set(server + p.Done)
			case "returning":
				bar.Set(server + n + p.Done)
			}
		}
	}
	res, err := mc.MatchPrivate(ctx, req)
	mu.Lock()
	if bar != nil {
		bar.Finish()
	}
	mu.Unlock()
	if err != nil {
		return matchError(c.Context, err, c.String("server"), mc, wire.ModePrivate)
	}

	r := res.Result
	m := r.Mechanism
	out := privateOutputOf(wire.ModePrivate, res, lo)
	w := c.App.Writer
	if c.Bool("json") {
		return printJSON(w, out)
	}
	fmt.Fprintf(w, "overlap:           %s\n", releaseText(r))
	fmt.Fprintf(w, "noise:             %s (differentially private; the platform released only this)\n", mechanismText(m))
	printList(w, lo)
	fmt.Fprintf(w, "platform set:      %d elements, its consented set plus ringers (at least %d by default), rounded up to a public bucket\n",
		out.ServerSetBucket, psi.DefaultRingers)
	printSnapshots(w, out.Snapshot, out.Snapshots)
	fmt.Fprintf(w, "session:           %s, %.2fs, %d bytes sent, %d received\n",
		out.Session, out.ElapsedSeconds, out.BytesSent, out.BytesReceived)
	return nil
}

// privateOutputOf is the --json output of a private or epoch session.
func privateOutputOf(mode wire.Mode, res client.PrivateMatchResult, lo listOutput) privateOutput {
	r := res.Result
	m := r.Mechanism
	out := privateOutput{Mode: mode.String(), Below: r.Below, Count: r.Count, Low: r.Low, High: r.High,
		Threshold: r.Threshold, Mechanism: m.Name(), Epsilon: m.Epsilon().RatString(), Sensitivity: m.Sensitivity(),
		ServerSetBucket: r.ServerSize, Snapshot: snapshotOf(res.Snapshot), Snapshots: snapshotsOf(res.Snapshots), listOutput: lo,
		sessionOutput: sessionOutput{Session: res.SessionID, ElapsedSeconds: res.Elapsed.Seconds(),
			BytesSent: res.Traffic.WireBytesSent, BytesReceived: res.Traffic.WireBytesReceived}}
	out.ListSize = r.ClientSize
	return out
}

// releaseText describes a private-mode release for a person.
func releaseText(r psi.PrivateResult) string {
	unit := "identifiers"
	if r.Slots > 0 {
		unit = "customers"
	}
	if r.Below {
		return fmt.Sprintf("under %d of %d %s (95%% interval %d–%d)", r.Threshold, r.ClientSize, unit, r.Low, r.High)
	}
	return fmt.Sprintf("about %d of %d %s (%.1f%%), 95%% interval %d–%d",
		r.Count, r.ClientSize, unit, 100*float64(r.Count)/float64(r.ClientSize), r.Low, r.High)
}

// mechanismText reads "discrete Laplace, ε = 1/2, Δ = 1".
func mechanismText(m dp.Mechanism) string {
	return fmt.Sprintf("%s, ε = %s, Δ = %d", m.Name(), m.Epsilon().RatString(), m.Sensitivity())
}

func printList(w io.Writer, lo listOutput) {
	if lo.Slots > 0 {
		fmt.Fprintf(w, "list size:         %d customers (%d rows, %d duplicates, %d rejected; %d bad cells), %d slots each, kinds %s\n",
			lo.ListSize, lo.Rows, lo.Duplicates, lo.Rejected, lo.BadCells, lo.Slots, lo.Kinds)
		return
	}
	fmt.Fprintf(w, "list size:         %d distinct identifiers (%d rows, %d duplicates, %d rejected)\n", lo.ListSize, lo.Rows, lo.Duplicates, lo.Rejected)
}

func printSnapshot(w io.Writer, s snapshotOutput) {
	fmt.Fprintf(w, "consent snapshot:  v%d, digest %s, taken %s\n", s.Version, s.Digest, s.TakenAt.Format(time.RFC3339))
}

// printSnapshots prints a record session's snapshot of each kind, or the
// session's one snapshot.
func printSnapshots(w io.Writer, s snapshotOutput, kinds []snapshotOutput) {
	if len(kinds) == 0 {
		printSnapshot(w, s)
		return
	}
	for _, k := range kinds {
		fmt.Fprintf(w, "consent snapshot:  %s v%d, digest %s, taken %s\n", k.Kind, k.Version, k.Digest, k.TakenAt.Format(time.RFC3339))
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newBar(w io.Writer, total int) *progressbar.ProgressBar {
	return progressbar.NewOptions(total, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("matching"), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(), progressbar.OptionShowCount())
}

// parseMode reads --mode; empty (OVERLAP_MODE set to nothing) is the
// default, private.
func parseMode(s string) (wire.Mode, error) {
	switch s {
	case "private", "":
		return wire.ModePrivate, nil
	case "exact":
		return wire.ModeExact, nil
	case "epoch":
		return wire.ModeEpochSession, nil
	}
	return 0, withHint(fmt.Errorf("unknown mode %q", s), "use --mode private (the platform counts, a noised count), --mode epoch (the same with a setup per epoch) or --mode exact (this side counts)")
}

// matchError adds a hint to what went wrong talking to the server. mode is
// the mode the session asked for; mc, when not nil, is asked which
// modes the platform serves after a mode refusal.
func matchError(ctx context.Context, err error, server string, mc *client.Client, mode wire.Mode) error {
	if r, ok := client.RefusalOf(err); ok {
		msg := errors.New(connectMessage(err))
		switch r.Limit {
		case client.LimitMinListSize:
			return withHint(msg, "the platform needs a larger list: add identifiers, or ask it to lower your minimum (overlap advertisers set --min-list)")
		case client.LimitMaxListSize:
			return withHint(msg, "split the list, or ask the platform to raise your maximum (overlap advertisers set --max-list)")
		case client.LimitBudget:
			if r.ResetsAt.IsZero() {
				return withHint(msg, "the list is larger than your whole budget: split it, or ask the platform to raise it (overlap advertisers set --budget)")
			}
			return withHint(msg, "your identifier budget frees enough room at %s (in %s); or ask the platform to raise it",
				r.ResetsAt.Local().Format(time.RFC1123), roughly(time.Until(r.ResetsAt)))
		case client.LimitPrivacyBudget:
			if r.ResetsAt.IsZero() {
				return withHint(msg, "one private session costs more than your whole privacy budget: ask the platform to raise it (overlap advertisers set --privacy-budget)")
			}
			return withHint(msg, "your privacy budget frees enough ε for a private session at %s (in %s); or ask the platform to raise it (overlap advertisers set --privacy-budget)",
				r.ResetsAt.Local().Format(time.RFC1123), roughly(time.Until(r.ResetsAt)))
		case client.LimitMode:
			return withHint(msg, "%s", modeHint(ctx, mc, mode))
		case client.LimitAdvertiserSessions:
			return withHint(msg, "one session at a time per advertiser: wait for the other to finish")
		case client.LimitServerSessions:
			return withHint(msg, "the platform is busy: retry in a minute")
		case client.LimitCanonicalization:
			return withHint(msg, "this overlap and the platform's server canonicalize identifiers differently: use the same version of overlap (overlap version)")
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
	case errors.Is(err, client.ErrBroken):
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

// modeHint says which mode to pass after the platform refused mode, from
// the modes its GetPolicy lists for this advertiser when it answers.
func modeHint(ctx context.Context, mc *client.Client, mode wire.Mode) string {
	if mode == wire.ModeEpochSetup || mode == wire.ModeEpochSession {
		return "the platform does not serve you epochs: pass --mode private, or ask it to (overlap advertisers set --modes private,epoch)"
	}
	other := wire.ModeExact
	if mode == wire.ModeExact {
		other = wire.ModePrivate
	}
	generic := fmt.Sprintf("the platform does not serve you %s mode: pass --mode %s, or ask it to (overlap advertisers set --modes exact,private)", mode, other)
	if mc == nil {
		return generic
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := mc.Policy(pctx)
	if err != nil || !slices.Contains(p.Modes, other.String()) {
		return generic
	}
	return fmt.Sprintf("the platform serves you %s mode only: pass --mode %s", other, other)
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
func newMatchClient(c *cli.Context) (*client.Client, error) {
	key := c.String("api-key")
	if f := c.String("api-key-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, withHint(err, "--api-key-file names the file overlap advertisers add --key-file wrote")
		}
		key = strings.TrimSpace(string(b))
	}
	if key != "" {
		if _, err := client.ParseAPIKey(key); err != nil {
			return nil, withHint(errors.New("the API key is malformed"), "an API key reads ovl_<12 hex digits>_<52 letters and digits>, as overlap advertisers add printed it")
		}
	} else if c.String("cert") == "" {
		return nil, withHint(errors.New("no credentials"), "pass --api-key-file FILE, set OVERLAP_API_KEY, or pass --cert and --key")
	}
	tlsCfg, err := client.TLSConfig(c.String("ca"), c.String("cert"), c.String("key"))
	if err != nil {
		return nil, withHint(err, "--ca, --cert and --key name PEM files")
	}

	var suites []psi.Suite
	if v := c.String("suite"); v != "" {
		if suites, err = psi.ParseSuiteList(v); err != nil {
			return nil, withHint(err, "--suite takes 2, 1 or 2,1 (both: the platform chooses)")
		}
	}
	mc, err := client.New(client.Config{Addr: c.String("server"), APIKey: key, TLS: tlsCfg, Suites: suites})
	if err != nil {
		return nil, withHint(err, "--server takes HOST:PORT, such as localhost:8443")
	}
	return mc, nil
}

// showPolicy prints the limits the platform applies to this advertiser.
func showPolicy(c *cli.Context) error {
	mc, err := newMatchClient(c)
	if err != nil {
		return err
	}
	defer mc.Close()
	p, err := mc.Policy(c.Context)
	if err != nil {
		return matchError(c.Context, err, c.String("server"), nil, 0)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, policyJSON{
			Advertiser: p.Advertiser, Modes: p.Modes, Kinds: p.Kinds,
			MinListSize: p.MinListSize, MaxListSize: p.MaxListSize,
			Budget: p.Budget, BudgetUsed: p.BudgetUsed, BudgetWindowSeconds: int64(p.BudgetWindow / time.Second),
			PrivacyBudget: dp.Epsilon(p.PrivacyBudget).String(), PrivacyUsed: dp.Epsilon(p.PrivacyUsed).String(),
			PrivacyCost: dp.Epsilon(p.PrivacyCost).String(),
		})
	}
	w := c.App.Writer
	fmt.Fprintf(w, "advertiser:      %s\n", p.Advertiser)
	fmt.Fprintf(w, "modes:           %s\n", modesText(p.Modes))
	fmt.Fprintf(w, "list size:       %d to %d distinct identifiers per session\n", p.MinListSize, p.MaxListSize)
	fmt.Fprintf(w, "budget:          %d of %d identifiers used in the last %s\n", p.BudgetUsed, p.Budget, roughly(p.BudgetWindow))
	left := sessionsLeft(p.PrivacyBudget-p.PrivacyUsed, p.PrivacyCost)
	if !slices.Contains(p.Modes, wire.ModePrivate.String()) {
		left = "; private mode is not served to you"
	}
	fmt.Fprintf(w, "privacy budget:  ε %s of %s used in the last %s; ε %s per private session%s\n",
		dp.Epsilon(p.PrivacyUsed).String(), dp.Epsilon(p.PrivacyBudget).String(), roughly(p.BudgetWindow), dp.Epsilon(p.PrivacyCost).String(), left)
	fmt.Fprintf(w, "kinds:           %s\n", strings.Join(p.Kinds, ", "))
	return nil
}

// policyJSON is the --policy --json output; ε values are decimals.
type policyJSON struct {
	Advertiser          string   `json:"advertiser"`
	Modes               []string `json:"modes"`
	Kinds               []string `json:"kinds"`
	MinListSize         int64    `json:"min_list_size"`
	MaxListSize         int64    `json:"max_list_size"`
	Budget              int64    `json:"budget"`
	BudgetUsed          int64    `json:"budget_used"`
	BudgetWindowSeconds int64    `json:"budget_window_seconds"`
	PrivacyBudget       string   `json:"privacy_budget_epsilon"`
	PrivacyUsed         string   `json:"privacy_used_epsilon"`
	PrivacyCost         string   `json:"privacy_cost_epsilon"`
}

// modesText lists the modes served with the flag that picks each.
func modesText(modes []string) string {
	if len(modes) == 0 {
		return "none"
	}
	var parts []string
	for _, m := range modes {
		if base, ok := strings.CutSuffix(m, "-records"); ok {
			parts = append(parts, fmt.Sprintf("%s (a customer file, --mode %s)", m, base))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (--mode %s)", m, m))
	}
	return strings.Join(parts, ", ")
}

// sessionsLeft says how many private sessions the ε left pays for.
func sessionsLeft(left, cost int64) string {
	if cost <= 0 {
		return ""
	}
	k := max(left, 0) / cost
	if k == 1 {
		return "; 1 more session in the window"
	}
	return fmt.Sprintf("; %d more sessions in the window", k)
}
