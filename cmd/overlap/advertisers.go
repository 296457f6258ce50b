package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi/service"
	"github.com/overlap-psi/overlap/psi/store"
)

// Per-advertiser policy flags: 0 keeps the server's default.
var (
	advMinListFlag = &cli.Int64Flag{Name: "min-list", Usage: "smallest list this advertiser may match, in distinct identifiers (0: the server's --min-list)"}
	advMaxListFlag = &cli.Int64Flag{Name: "max-list", Usage: "largest list this advertiser may match (0: the server's --max-list)"}
	advBudgetFlag  = &cli.Int64Flag{Name: "budget", Usage: "identifiers this advertiser may match per budget window (0: the server's --budget)"}
)

func advertisersCommand() *cli.Command {
	return &cli.Command{
		Name:  "advertisers",
		Usage: "platform: register advertisers, show them, revoke their credentials, set their limits",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "register an advertiser and print its API key, once",
				ArgsUsage: "NAME",
				Description: "Creates an API key ovl_<id>_<secret> (256 random bits) and prints it once on\n" +
					"stdout; the store keeps only its SHA-256 (a random key of that strength needs no\n" +
					"slow password hash). --key-file writes it to a file (mode 0600) instead. With\n" +
					"--cert-name, a TLS client certificate whose CN or a SAN equals the name also\n" +
					"authenticates the advertiser (overlap serve --client-ca).",
				Flags: []cli.Flag{dbFlag,
					&cli.StringFlag{Name: "cert-name", Usage: "client certificate CN or SAN that authenticates this advertiser"},
					&cli.BoolFlag{Name: "no-key", Usage: "create no API key (client certificate only; needs --cert-name)"},
					&cli.StringFlag{Name: "key-file", Usage: "write the API key to this file (mode 0600) instead of stdout"},
					advMinListFlag, advMaxListFlag, advBudgetFlag},
				Action: advertisersAdd,
			},
			{
				Name:   "list",
				Usage:  "list advertisers with their limits, spend in the budget window and status",
				Flags:  []cli.Flag{dbFlag, budgetWindowFlag},
				Action: advertisersList,
			},
			{
				Name:      "revoke",
				Usage:     "revoke an advertiser's API key and certificate; its sessions are refused from now on",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dbFlag},
				Action:    advertisersRevoke,
			},
			{
				Name:      "set",
				Usage:     "set an advertiser's limits (0 restores the server's default)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dbFlag, advMinListFlag, advMaxListFlag, advBudgetFlag},
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

func advPolicy(c *cli.Context) store.Policy {
	return store.Policy{MinListSize: c.Int64(advMinListFlag.Name), MaxListSize: c.Int64(advMaxListFlag.Name), Budget: c.Int64(advBudgetFlag.Name)}
}

func advertisersAdd(c *cli.Context) error {
	name, err := oneName(c, "add")
	if err != nil {
		return err
	}
	a := store.Advertiser{Name: name, CertName: c.String("cert-name"), Policy: advPolicy(c)}
	var key service.APIKey
	if !c.Bool("no-key") {
		if key, err = service.NewAPIKey(); err != nil {
			return err
		}
		a.KeyID, a.KeyHash = key.ID, key.Hash()
	} else if a.CertName == "" {
		return withHint(errors.New("an advertiser needs an API key or a certificate name"), "drop --no-key, or pass --cert-name")
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
	fmt.Fprintf(c.App.ErrWriter, "overlap: advertiser %q added (id %d)\n", a.Name, a.ID)
	if a.KeyID == "" {
		return nil
	}
	if f := c.String("key-file"); f != "" {
		if err := os.WriteFile(f, []byte(key.Reveal()+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(c.App.ErrWriter, "overlap: API key written to %s; it is not stored and cannot be shown again\n", f)
		return nil
	}
	fmt.Fprintln(out, key.Reveal())
	fmt.Fprintln(c.App.ErrWriter, "overlap: this API key is shown once and not stored; give it to the advertiser (overlap match --api-key)")
	return nil
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
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tkey id\tcert name\tmin list\tmax list\tbudget\tused\tstatus")
	def := func(v int64) string {
		if v == 0 {
			return "default"
		}
		return fmt.Sprint(v)
	}
	for _, a := range list {
		used, err := st.BudgetUsed(c.Context, a.ID, window, time.Now())
		if err != nil {
			return err
		}
		status := "active"
		if a.Revoked() {
			status = "revoked " + a.RevokedAt.Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.Name, orDash(a.KeyID), orDash(a.CertName),
			def(a.Policy.MinListSize), def(a.Policy.MaxListSize), def(a.Policy.Budget), used, status)
	}
	return tw.Flush()
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
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := st.SetAdvertiserPolicy(c.Context, name, advPolicy(c))
	if errors.Is(err, store.ErrUnknownAdvertiser) {
		return withHint(err, "see overlap advertisers list")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "advertiser %q: min list %d, max list %d, budget %d (0: server default)\n",
		a.Name, a.Policy.MinListSize, a.Policy.MaxListSize, a.Policy.Budget)
	return nil
}
