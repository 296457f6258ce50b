package service

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/store"
)

// issue writes a certificate for cn signed by parent (self-signed when
// parent is nil) and returns its files.
func issue(t *testing.T, dir, name, cn string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, cert, key
}

// TestClientCertificate authenticates advertisers by mTLS: a certificate
// whose CN is an advertiser's certificate name works, an unknown one is
// refused, and one from another CA fails the handshake.
func TestClientCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, _, ca, caKey := issue(t, dir, "ca", "advertiser CA", true, nil, nil)
	acmeCert, acmeKey, _, _ := issue(t, dir, "acme", "acme.example", false, ca, caKey)
	strangerCert, strangerKey, _, _ := issue(t, dir, "stranger", "stranger.example", false, ca, caKey)
	_, _, rogueCA, rogueKey := issue(t, dir, "rogue", "rogue CA", true, nil, nil)
	rogueCert, rogueCertKey, _, _ := issue(t, dir, "roguecert", "acme.example", false, rogueCA, rogueKey)

	st := seedStore(t, 300)
	dc, err := WriteDevCert(filepath.Join(dir, "server"))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerTLS(t, st, dc.CertFile, dc.KeyFile, caFile, nil)
	if _, err := st.AddAdvertiser(t.Context(), store.Advertiser{Name: "acme", CertName: "acme.example", Policy: store.Policy{Modes: store.ModesExact}}); err != nil {
		t.Fatal(err)
	}
	clientWith := func(cert, key string) *client.Client {
		tlsCfg, err := client.TLSConfig(ts.caFile, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(client.Config{Addr: ts.addr, TLS: tlsCfg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := clientWith(acmeCert, acmeKey).Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: emails(200, 400)})
	if err != nil || res.Overlap != 100 {
		t.Fatalf("acme by certificate: overlap %d, %v", res.Overlap, err)
	}
	if rec := ts.lastSession(t, 1); rec.AdvertiserName != "acme" || rec.Result != ResultOK {
		t.Errorf("audit row %+v", rec)
	}
	_, err = clientWith(strangerCert, strangerKey).Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: emails(0, 200)})
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("an unknown certificate: %v", err)
	}
	if _, err = clientWith(rogueCert, rogueCertKey).Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: emails(0, 200)}); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
}

// TestShutdownTimeout: a session that does not finish within the shutdown
// timeout is aborted, and audited.
func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 200), nil)
	cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	openSession(t, cl, t.Context(), 100) // never sends its elements
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); err == nil {
		t.Error("Shutdown reported a clean stop with a session stuck")
	}
	recs := ts.sessions(t)
	if len(recs) != 1 || recs[0].Result != ResultAborted {
		t.Errorf("audit rows %+v", recs)
	}
}
