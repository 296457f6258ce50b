//go:build !advertiser

package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi/store"
)

// advertisersEpochsCommand lists the epochs the store keeps (SPEC.md
// §10.12.5) and ends them on request.
func advertisersEpochsCommand() *cli.Command {
	return &cli.Command{
		Name:      "epochs",
		Usage:     "list the epochs kept for advertisers (setups of --mode epoch), or end an advertiser's at once",
		ArgsUsage: "[NAME]",
		Description: "Lists each kept epoch: its advertiser, id, kind, the platform elements its setup\n" +
			"sent (N, ringers included) and the tags kept (one per consented identifier of\n" +
			"its snapshot), the bytes stored and per tag, the snapshot it counts against,\n" +
			"and when it ends. Sessions of an epoch count consent as of its snapshot, so a\n" +
			"withdrawal since then still counts until the epoch ends (SPEC.md §10.12.6).\n" +
			"--expire NAME deletes the advertiser's epochs (keys and tags) now: its next\n" +
			"epoch session is refused and its client makes a new setup. overlap serve\n" +
			"deletes ended epochs by itself at every --reconcile-interval.",
		Flags: []cli.Flag{dbFlag,
			&cli.BoolFlag{Name: "expire", Usage: "delete NAME's epochs now (their sessions are refused from now on)"}},
		Action: advertisersEpochs,
	}
}

func advertisersEpochs(c *cli.Context) error {
	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	var adv int64
	names := map[int64]string{}
	list, err := st.Advertisers(c.Context)
	if err != nil {
		return err
	}
	for _, a := range list {
		names[a.ID] = a.Name
	}
	if c.NArg() > 0 || c.Bool("expire") {
		name, err := oneName(c, "epochs")
		if err != nil {
			return err
		}
		a, err := advertiserByName(c, st, name)
		if err != nil {
			return err
		}
		adv = a.ID
	}
	if c.Bool("expire") {
		n, err := st.DeleteEpochs(c.Context, adv, time.Time{})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "advertiser %q: %d epochs deleted; its next epoch session makes a new setup\n", names[adv], n)
		return nil
	}
	recs, err := st.Epochs(c.Context, adv)
	if err != nil {
		return err
	}
	return printEpochs(c, recs, names)
}

func printEpochs(c *cli.Context, recs []store.EpochRecord, names map[int64]string) error {
	if len(recs) == 0 {
		fmt.Fprintln(c.App.Writer, "no epochs")
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "advertiser\tepoch\tkind\tsuite\telements\ttags kept\tstored\tper tag\tsnapshot\tcreated\tends\tstatus")
	for _, r := range recs {
		m := r.Meta
		status := "live"
		if !now.Before(m.ExpiresAt) {
			status = "ended"
		}
		per := "-"
		if m.Size > 0 {
			per = fmt.Sprintf("%.1f B", float64(r.TagBytes)/float64(m.Size))
		}
		fmt.Fprintf(tw, "%s\t%x\t%v\t%v\t%d\t%d\t%s\t%s\tv%d\t%s\t%s\t%s\n", names[r.Advertiser], m.ID[:4], m.Kind, m.Suite.Or1(), m.ServerSize, m.Size,
			humanBytes(r.TagBytes), per, r.SnapshotVersion, r.CreatedAt.UTC().Format(time.RFC3339), m.ExpiresAt.UTC().Format(time.RFC3339), status)
	}
	return tw.Flush()
}
