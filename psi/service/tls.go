package service

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/overlap-psi/overlap/psi/client"
)

// DevCert is a self-signed development certificate written by
// WriteDevCert.
type DevCert struct {
	CertFile string // cert.pem: the certificate, also the CA a client trusts
	KeyFile  string // key.pem: its private key, mode 0600
	Reused   bool   // the files existed and were still valid
	// Warnings say what WriteDevCert fixed: a folder open to other users
	// narrowed to 0700, a key file readable by others replaced by a new
	// pair. No warning holds key material.
	Warnings []string
}

// devCertLifetime is how long a development certificate is valid.
const devCertLifetime = 90 * 24 * time.Hour

// WriteDevCert makes sure dir holds a self-signed ECDSA P-256 certificate
// for localhost, 127.0.0.1, ::1 and hosts, valid for 90 days, in cert.pem
// and key.pem. It keeps an existing pair that is valid for another day and
// covers hosts, so that clients that trust it keep working across restarts.
// The certificate is its own CA: a client passes cert.pem as its CA file.
//
// dir is created 0700 and key.pem 0600. An existing dir that group or
// others may access is narrowed to 0700, and an existing key.pem that they
// may read is not reused (its key may have been read): a new pair replaces
// it. Each fix adds a warning to DevCert.Warnings.
func WriteDevCert(dir string, hosts ...string) (DevCert, error) {
	dc := DevCert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return dc, fmt.Errorf("service: dev certificate: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return dc, fmt.Errorf("service: dev certificate: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return dc, fmt.Errorf("service: dev certificate: narrowing %s to 0700: %w", dir, err)
		}
		dc.Warnings = append(dc.Warnings, fmt.Sprintf("the folder %s was open to other users (%#o); narrowed to 0700", dir, fi.Mode().Perm()))
	}
	if fi, err := os.Stat(dc.KeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		dc.Warnings = append(dc.Warnings, fmt.Sprintf("the key %s was readable by other users (%#o); not reused: a new certificate and key replace it (clients must trust the new %s)",
			dc.KeyFile, fi.Mode().Perm(), dc.CertFile))
	} else if reusable(dc, hosts) {
		dc.Reused = true
		return dc, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return dc, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return dc, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "overlap development server", Organization: []string{"Overlap (development only)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(devCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" && h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return dc, fmt.Errorf("service: dev certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return dc, err
	}
	if err := writePEM(dc.KeyFile, "PRIVATE KEY", kder, 0o600); err != nil {
		return dc, err
	}
	if err := writePEM(dc.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return dc, err
	}
	return dc, nil
}

func reusable(dc DevCert, hosts []string) bool {
	pair, err := tls.LoadX509KeyPair(dc.CertFile, dc.KeyFile)
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Until(cert.NotAfter) < 24*time.Hour {
		return false
	}
	for _, h := range append([]string{"localhost"}, hosts...) {
		if h != "" && cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// writePEM replaces path with one PEM block, through a new temporary file
// created with mode (never a leftover one with a wider mode).
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("service: writing %s: %w", path, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("service: writing %s: %w", path, err)
	}
	_, err = f.Write(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	if err == nil {
		err = f.Chmod(mode) // whatever the umask
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("service: writing %s: %w", path, err)
	}
	return nil
}

// ServerTLS returns the server's TLS configuration: TLS 1.3 only, HTTP/2,
// the certificate in certFile and keyFile, and, when clientCAFile is not
// empty, client certificates verified against it (a client may still
// authenticate with an API key instead).
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("service: loading the server certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		NextProtos:   []string{"h2"},
	}
	if clientCAFile != "" {
		pool, err := client.CertPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}
