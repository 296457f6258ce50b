//go:build !advertiser

package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/store"
)

// advertisersRotateKey replaces an advertiser's API key with a new one,
// printed once (or written to --key-file) like the key of advertisers add.
func advertisersRotateKey(c *cli.Context) error {
	name, err := oneName(c, "rotate-key")
	if err != nil {
		return err
	}
	key, err := client.NewAPIKey()
	if err != nil {
		return err
	}
	f := c.String("key-file")
	var keyFile *os.File
	if f != "" {
		if keyFile, err = createKeyFile(f); err != nil {
			return err
		}
		defer func() {
			if keyFile != nil { // not written: the key was not rotated
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
	a, err := st.AdvertiserByName(c.Context, name)
	if errors.Is(err, store.ErrUnknownAdvertiser) {
		return withHint(err, "see overlap advertisers list")
	}
	if err != nil {
		return err
	}
	if a.Revoked() {
		return withHint(fmt.Errorf("advertiser %q was revoked; a new key would not work", name), "revocation is final: add the advertiser under another name")
	}
	if a, err = st.RotateAdvertiserKey(c.Context, name, key.ID, key.Hash()); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "overlap: advertiser %q has a new API key; the old one no longer works\n", a.Name)
	if f != "" {
		_, err := keyFile.WriteString(key.Reveal() + "\n")
		if err = errors.Join(err, keyFile.Sync(), keyFile.Close()); err != nil {
			keyFile = nil
			return withHint(fmt.Errorf("writing the API key to %s: %w", f, err),
				"the key was rotated but the new one is lost; rotate it again (overlap advertisers rotate-key %s)", a.Name)
		}
		keyFile = nil
		fmt.Fprintf(c.App.ErrWriter, "overlap: API key written to %s; it is not stored and cannot be shown again\n", f)
		return nil
	}
	fmt.Fprintln(c.App.Writer, key.Reveal())
	fmt.Fprintln(c.App.ErrWriter, "overlap: this API key is shown once and not stored; give it to the advertiser (overlap match --api-key)")
	return nil
}
