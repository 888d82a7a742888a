// Package testsecure gives tests real servers with encryption and
// authentication turned on: a throw-away certificate authority and server
// certificate (PKI), a ClickHouse 18.16 that accepts only TLS on its native
// port and only a password-protected user (StartClickHouse), and a Kafka
// 4.1 broker whose only client listener is SASL_SSL with SCRAM-SHA-512
// (StartKafka). Each server runs on 127.0.0.1 on free ports of its own, with
// its data under the test's temporary directory, and is killed when the test
// (or TestMain's cleanup) ends. A server that cannot start fails the test;
// nothing skips.
//
// The package imports no chatwarden package and no database or Kafka
// client, so any package's tests may use it.
package testsecure

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a certificate authority and one server certificate it signed, for
// the names 127.0.0.1, ::1 and localhost, written as PEM files.
type PKI struct {
	// Dir holds the files.
	Dir string
	// CAFile is the CA certificate, the file clients trust.
	CAFile string
	// CertFile and KeyFile are the server certificate and its private key
	// (PKCS #8, unencrypted).
	CertFile, KeyFile string
	// KeyCertFile is the private key followed by the certificate, the
	// layout Kafka's PEM key store reads.
	KeyCertFile string
	// Pool holds the CA certificate.
	Pool *x509.CertPool
}

// NewPKI generates a CA and a server certificate into a temporary
// directory of t (valid from an hour ago for a day).
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newPKI(dir string) (*PKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ca key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "chatwarden test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing ca certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parsing ca certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Kafka's broker also dials itself (inter-broker) with this certificate.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding server key: %w", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	p := &PKI{
		Dir:         dir,
		CAFile:      filepath.Join(dir, "ca.pem"),
		CertFile:    filepath.Join(dir, "server.pem"),
		KeyFile:     filepath.Join(dir, "server.key"),
		KeyCertFile: filepath.Join(dir, "server-keystore.pem"),
		Pool:        x509.NewCertPool(),
	}
	p.Pool.AddCert(ca)
	for path, b := range map[string][]byte{
		p.CAFile:      caPEM,
		p.CertFile:    certPEM,
		p.KeyFile:     keyPEM,
		p.KeyCertFile: append(append([]byte{}, keyPEM...), certPEM...),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return p, nil
}

// ClientTLS returns a client configuration that trusts only the CA.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
