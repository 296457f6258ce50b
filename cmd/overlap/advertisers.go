//go:build !advertiser

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/overlap-psi/overlap/psi/client"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/service"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Per-advertiser policy flags: 0 keeps the server's default.
var (
	advMinListFlag       = &cli.Int64Flag{Name: "min-list", Usage: "smallest list this advertiser may match, in distinct identifiers (0: the server's --min-list)"}
	advMaxListFlag       = &cli.Int64Flag{Name: "max-list", Usage: "largest list this advertiser may match (0: the server's --max-list)"}
	advBudgetFlag        = &cli.Int64Flag{Name: "budget", Usage: "identifiers this advertiser may match per budget window (0: the server's --budget)"}
	advPrivacyBudgetFlag = &cli.StringFlag{Name: "privacy-budget", Usage: "ε this advertiser may spend on private sessions per budget window, a decimal such as 2 (0: the server's --privacy-budget)"}
	advPrivacyCostFlag   = &cli.StringFlag{Name: "privacy-cost", Usage: "ε of one private session of this advertiser, the noise's ε, such as 0.5 (0: the server's --privacy-cost)"}
	advAddModesFlag      = &cli.StringFlag{Name: "modes", Usage: "modes served to this advertiser, a list of: private (the platform counts and releases a noised count), epoch (the same, with a setup once per epoch: sessions cost what the list costs; SPEC.md §10.12), exact (the advertiser counts)", Value: "private"}
	advSetModesFlag      = &cli.StringFlag{Name: "modes", Usage: "modes served to this advertiser, a list of private, epoch and exact"}
)

func advertisersCommand() *cli.Command {
	return &cli.Command{
		Name:  "advertisers",
		Usage: "platform: register advertisers, show them and their budgets, revoke their credentials, set their limits",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "register an advertiser and print its API key, once",
				ArgsUsage: "NAME",
				Description: "Creates an API key ovl_<id>_<secret> (256 random bits) and prints it once on\n" +
					"stdout; the store keeps only its SHA-256 (a random key of that strength needs no\n" +
					"slow password hash). --key-file writes it to a new file (mode 0600) instead; an\n" +
					"existing file is refused, never overwritten. With\n" +
					"--cert-name, a TLS client certificate whose CN or a SAN equals the name also\n" +
					"authenticates the advertiser (overlap serve --client-ca).\n\n" +
					"A new advertiser is served private mode only (SPEC.md §10): the platform counts\n" +
					"and releases a differentially private count, which holds against a modified\n" +
					"client. --modes exact,private also serves exact mode, where the advertiser\n" +
					"counts and learns the exact overlap, assuming it runs the unmodified client\n" +
					"(SPEC.md §8.2).",
				Flags: []cli.Flag{dbFlag,
					&cli.StringFlag{Name: "cert-name", Usage: "client certificate CN or SAN that authenticates this advertiser"},
					&cli.BoolFlag{Name: "no-key", Usage: "create no API key (client certificate only; needs --cert-name)"},
					&cli.StringFlag{Name: "key-file", Usage: "write the API key to this new file (created 0600; it must not exist) instead of stdout"},
					advAddModesFlag, advMinListFlag, advMaxListFlag, advBudgetFlag, advPrivacyBudgetFlag, advPrivacyCostFlag},
				Action: advertisersAdd,
			},
			advertisersEpochsCommand(),
			{
				Name:   "list",
				Usage:  "list advertisers with their modes, limits, spend in the budget window and status",
				Flags:  []cli.Flag{dbFlag, budgetWindowFlag},
				Action: advertisersList,
			},
			{
				Name:      "budget",
				Usage:     "show an advertiser's identifier and privacy budgets in the window ending now",
				ArgsUsage: "NAME",
				Description: "Shows, for the --budget-window ending now, the identifiers the advertiser's\n" +
					"sessions used of its identifier budget, the ε its private sessions spent of its\n" +
					"privacy budget (SPEC.md §10.8), the ε one private session costs, and how many\n" +
					"more private sessions the budget pays for. Limits the advertiser does not\n" +
					"override are marked (server default): the defaults of overlap serve without\n" +
					"its --budget, --privacy-budget and --privacy-cost flags.",
				Flags:  []cli.Flag{dbFlag, budgetWindowFlag},
				Action: advertisersBudget,
			},
			{
				Name:      "revoke",
				Usage:     "revoke an advertiser's API key and certificate; its sessions are refused from now on",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dbFlag},
				Action:    advertisersRevoke,
			},
			{
				Name:      "rotate-key",
				Usage:     "give an advertiser a new API key; the old one stops working at once, budgets and audit rows stay",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{dbFlag,
					&cli.StringFlag{Name: "key-file", Usage: "write the new API key to this new file (created 0600; it must not exist) instead of stdout"}},
				Action: advertisersRotateKey,
			},
			{
				Name:      "set",
				Usage:     "set an advertiser's modes and limits; only the flags given change (0 restores the server's default)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dbFlag, advSetModesFlag, advMinListFlag, advMaxListFlag, advBudgetFlag, advPrivacyBudgetFlag, advPrivacyCostFlag},
				Action:    advertisersSet,
			},
		},
	}
}

func oneName(c *cli.Context, cmd string) (string, error) {
	if c.NArg() != 1 {
		if c.NArg() > 1 && strings.HasPrefix(c.Args().Get(1), "-") {
			return "", withHint(fmt.Errorf("advertisers %s: flags after NAME are not read", cmd), "put the flags before NAME: overlap advertisers %s --db platform.db [flags] NAME", cmd)
		}
		return "", withHint(fmt.Errorf("advertisers %s takes one NAME", cmd), "overlap advertisers %s --db platform.db acme", cmd)
	}
	return c.Args().First(), nil
}

// applyPolicyFlags overrides in p the policy flags given on the command
// line (all of them for add, whose flags have defaults), so that set
// changes only what the user asked for.
func applyPolicyFlags(c *cli.Context, p store.Policy, all bool) (store.Policy, error) {
	given := func(name string) bool { return all || c.IsSet(name) }
	if given("modes") {
		m, err := store.ParseModeSet(c.String("modes"))
		if err != nil {
			return p, withHint(err, "use --modes private, private,epoch, exact or exact,private")
		}
		p.Modes = m
	}
	if given(advMinListFlag.Name) {
		p.MinListSize = c.Int64(advMinListFlag.Name)
	}
	if given(advMaxListFlag.Name) {
		p.MaxListSize = c.Int64(advMaxListFlag.Name)
	}
	if given(advBudgetFlag.Name) {
		p.Budget = c.Int64(advBudgetFlag.Name)
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{advPrivacyBudgetFlag.Name, &p.PrivacyBudget}, {advPrivacyCostFlag.Name, &p.PrivacyCost}} {
		if !c.IsSet(f.name) {
			continue
		}
		v, err := parseEpsilon(f.name, c.String(f.name))
		if err != nil {
			return p, err
		}
		*f.v = v
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{advMinListFlag.Name, p.MinListSize}, {advMaxListFlag.Name, p.MaxListSize}, {advBudgetFlag.Name, p.Budget}} {
		if f.v < 0 {
			return p, withHint(fmt.Errorf("--%s %d is negative", f.name, f.v), "pass a positive number, or 0 for the server's default")
		}
	}
	if p.PrivacyCost > dp.MaxEpsilon*int64(dp.OneEpsilon) {
		return p, withHint(fmt.Errorf("--privacy-cost %s is above the largest ε of the noise, %d", dp.Epsilon(p.PrivacyCost).String(), dp.MaxEpsilon),
			"a private session costs its noise's ε; 0.5 is the default, and larger values give little privacy")
	}
	return p, nil
}

// orDefault prints an override, or "default" for 0.
func orDefault(v int64, format func(int64) string) string {
	if v == 0 {
		return "default"
	}
	return format(v)
}

func itoa(v int64) string { return fmt.Sprint(v) }

func advertisersAdd(c *cli.Context) error {
	name, err := oneName(c, "add")
	if err != nil {
		return err
	}
	pol, err := applyPolicyFlags(c, store.Policy{}, true)
	if err != nil {
		return err
	}
	a := store.Advertiser{Name: name, CertName: c.String("cert-name"), Policy: pol}
	var key client.APIKey
	if !c.Bool("no-key") {
		if key, err = client.NewAPIKey(); err != nil {
			return err
		}
		a.KeyID, a.KeyHash = key.ID, key.Hash()
	} else if a.CertName == "" {
		return withHint(errors.New("an advertiser needs an API key or a certificate name"), "drop --no-key, or pass --cert-name")
	}
	// The key file is created before the advertiser, so that a file that
	// exists already stops the command before a key nobody can see is
	// stored.
	var keyFile *os.File
	if f := c.String("key-file"); f != "" && a.KeyID != "" {
		if keyFile, err = createKeyFile(f); err != nil {
			return err
		}
		defer func() {
			if keyFile != nil { // not written: the advertiser was not added
				keyFile.Close()
				os.Remove(f)
			}
		}()
	}
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err = st.AddAdvertiser(c.Context, a)
	if errors.Is(err, store.ErrAdvertiserExists) {
		return withHint(err, "pick another name, or see overlap advertisers list")
	}
	if err != nil {
		return err
	}
	out := c.App.Writer
	fmt.Fprintf(c.App.ErrWriter, "overlap: advertiser %q added (id %d; modes %s)\n", a.Name, a.ID, modesOf(a.Policy))
	warnExact(c, a)
	if a.KeyID == "" {
		return nil
	}
	if f := c.String("key-file"); f != "" {
		_, err := keyFile.WriteString(key.Reveal() + "\n")
		if err = errors.Join(err, keyFile.Sync(), keyFile.Close()); err != nil {
			keyFile = nil
			return withHint(fmt.Errorf("writing the API key to %s: %w", f, err),
				"the advertiser was added but its key is lost; revoke it (overlap advertisers revoke %s) and add one under another name", a.Name)
		}
		keyFile = nil
		fmt.Fprintf(c.App.ErrWriter, "overlap: API key written to %s; it is not stored and cannot be shown again\n", f)
		return nil
	}
	fmt.Fprintln(out, key.Reveal())
	fmt.Fprintln(c.App.ErrWriter, "overlap: this API key is shown once and not stored; give it to the advertiser (overlap match --api-key)")
	return nil
}

// createKeyFile creates path for an API key: mode 0600 whatever the umask,
// and never over an existing file (O_EXCL), which may hold another key.
func createKeyFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, withHint(fmt.Errorf("key file %s already exists", path),
			"pass a new path to --key-file; an existing file is never overwritten, since it may hold another advertiser's key")
	}
	if err != nil {
		return nil, fmt.Errorf("creating the key file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("creating the key file: %w", err)
	}
	return f, nil
}

func advertisersList(c *cli.Context) error {
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.Advertisers(c.Context)
	if err != nil {
		return err
	}
	window := c.Duration(budgetWindowFlag.Name)
	now := time.Now()
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tkey id\tcert name\tmodes\tmin list\tmax list\tbudget\tused\tε budget\tε used\tstatus")
	for _, a := range list {
		used, eps, err := spent(c.Context, st, a.ID, window, now)
		if err != nil {
			return err
		}
		status := "active"
		if a.Revoked() {
			status = "revoked " + a.RevokedAt.Format(time.DateOnly)
		}
		p := a.Policy
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.Name, orDash(a.KeyID), orDash(a.CertName), modesOf(p),
			orDefault(p.MinListSize, itoa), orDefault(p.MaxListSize, itoa), orDefault(p.Budget, itoa), used,
			orDefault(p.PrivacyBudget, func(v int64) string { return dp.Epsilon(v).String() }), dp.Epsilon(eps).String(), status)
	}
	return tw.Flush()
}

// warnExact warns, when a is served exact mode, what exact mode lets an
// advertiser learn (SECURITY.md, "Exact mode is a membership oracle").
func warnExact(c *cli.Context, a store.Advertiser) {
	if !a.Policy.Modes.Has(uint8(wire.ModeExact)) {
		return
	}
	fmt.Fprintf(c.App.ErrWriter, "overlap: warning: advertiser %q is served exact mode, which tells it the exact overlap of any list it sends:\n"+
		"overlap: warning: with one person's identifier and 99 made-up ones it learns whether that person is on the platform (one person per session),\n"+
		"overlap: warning: and with a modified client which of all its identifiers are (up to --max-list per session, --budget per window).\n"+
		"overlap: warning: serve exact mode only to advertisers bound by contract; private mode holds against a modified client (SECURITY.md)\n", a.Name)
}

// modesOf names the modes an advertiser is served; 0, as an advertiser
// added without modes has, is private mode only.
func modesOf(p store.Policy) string {
	if p.Modes == 0 {
		return store.ModesPrivate.String()
	}
	return p.Modes.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func advertisersRevoke(c *cli.Context) error {
	name, err := oneName(c, "revoke")
	if err != nil {
		return err
	}
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := st.RevokeAdvertiser(c.Context, name, time.Now())
	if errors.Is(err, store.ErrUnknownAdvertiser) {
		return withHint(err, "see overlap advertisers list")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "advertiser %q revoked at %s\n", a.Name, a.RevokedAt.Format(time.RFC3339))
	return nil
}

func advertisersSet(c *cli.Context) error {
	name, err := oneName(c, "set")
	if err != nil {
		return err
	}
	// Check the flags before touching the store.
	if _, err := applyPolicyFlags(c, store.Policy{Modes: store.ModesPrivate}, false); err != nil {
		return err
	}
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	// SetAdvertiserPolicy replaces every override: start from the stored
	// ones and change only the flags given.
	a, err := advertiserByName(c, st, name)
	if err != nil {
		return err
	}
	pol, err := applyPolicyFlags(c, a.Policy, false)
	if err != nil {
		return err
	}
	if a, err = st.SetAdvertiserPolicy(c.Context, name, pol); err != nil {
		return err
	}
	p := a.Policy
	warnExact(c, a)
	fmt.Fprintf(c.App.Writer, "advertiser %q: modes %s, min list %s, max list %s, budget %s, privacy budget %s, privacy cost %s\n",
		a.Name, modesOf(p), orDefault(p.MinListSize, itoa), orDefault(p.MaxListSize, itoa), orDefault(p.Budget, itoa),
		orDefault(p.PrivacyBudget, epsText), orDefault(p.PrivacyCost, epsText))
	return nil
}

// advertiserByName finds an advertiser, with a hint when there is none.
func advertiserByName(c *cli.Context, st store.Store, name string) (store.Advertiser, error) {
	a, err := st.AdvertiserByName(c.Context, name)
	if errors.Is(err, store.ErrUnknownAdvertiser) {
		return a, withHint(err, "see overlap advertisers list")
	}
	return a, err
}

// epsText reads "ε 0.5".
func epsText(micro int64) string { return "ε " + dp.Epsilon(micro).String() }

func advertisersBudget(c *cli.Context) error {
	name, err := oneName(c, "budget")
	if err != nil {
		return err
	}
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := advertiserByName(c, st, name)
	if err != nil {
		return err
	}
	window, now := c.Duration(budgetWindowFlag.Name), time.Now()
	used, eps, err := spent(c.Context, st, a.ID, window, now)
	if err != nil {
		return err
	}
	// What the server resolves for a, with its default policy; a limit a
	// leaves at 0 is marked as the server's default.
	eff := service.DefaultPolicy().For(a.Policy)
	note := func(override int64) string {
		if override == 0 {
			return " (server default)"
		}
		return ""
	}
	budget, budgetNote := eff.Budget, note(a.Policy.Budget)
	privacy, privacyNote := eff.PrivacyBudget, note(a.Policy.PrivacyBudget)
	cost, costNote := eff.PrivacyCost, note(a.Policy.PrivacyCost)

	status := "active"
	if a.Revoked() {
		status = "revoked " + a.RevokedAt.Format(time.RFC3339)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "advertiser:       %s (%s; modes %s)\n", a.Name, status, modesOf(a.Policy))
	fmt.Fprintf(w, "window:           the %s ending %s\n", roughly(window), now.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "identifiers:      %d used of %d%s; %d left\n", used, budget, budgetNote, max(budget-used, 0))
	fmt.Fprintf(w, "privacy budget:   ε %s used of %s%s; ε %s left\n", dp.Epsilon(eps).String(), dp.Epsilon(privacy).String(), privacyNote,
		dp.Epsilon(max(privacy-eps, 0)).String())
	served := a.Policy.Modes == 0 || a.Policy.Modes.Has(uint8(wire.ModePrivate))
	if !served {
		fmt.Fprintf(w, "private session:  ε %s%s, but private mode is not served to this advertiser (overlap advertisers set --modes)\n",
			dp.Epsilon(cost).String(), costNote)
		return nil
	}
	fmt.Fprintf(w, "private session:  ε %s%s%s\n", dp.Epsilon(cost).String(), costNote, sessionsLeft(privacy-eps, cost))
	return nil
}

// spent returns what an advertiser spent in the window ending at now:
// identifiers and micro-ε.
func spent(ctx context.Context, st store.Store, advertiser int64, window time.Duration, now time.Time) (ids, eps int64, err error) {
	if ids, err = st.BudgetUsed(ctx, advertiser, window, now); err != nil {
		return 0, 0, err
	}
	if eps, err = st.EpsilonUsed(ctx, advertiser, window, now); err != nil {
		return 0, 0, err
	}
	return ids, eps, nil
}
