// Package tlstest makes TLS material for tests: a self-signed certificate
// authority and key pairs it signs, written as PEM files that servers
// (Kafka's PEM key store, redis-server) and clients read. Every run makes
// fresh keys; nothing is committed.
//
// Keys are ECDSA P-256 (fast to make, read by Go, Java and OpenSSL). A key
// pair's certificate names 127.0.0.1, ::1 and localhost, plus any host
// given, and may serve either side of a connection (server and client
// auth), so one Issue covers a server, a client of mutual TLS, or a broker
// that talks to itself.
package tlstest

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
)

// validity is how long certificates are valid, from an hour ago (clock skew
// between the test and a server is harmless).
const validity = 24 * time.Hour

// CA is a self-signed certificate authority. Its methods are safe for
// concurrent use.
type CA struct {
	// CertFile is the CA certificate, PEM: what a client or server trusts.
	CertFile string

	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// KeyPair is a certificate signed by a CA and its private key, as PEM files.
type KeyPair struct {
	// CertFile is the certificate, PEM.
	CertFile string
	// KeyFile is the private key, PEM, PKCS #8 unencrypted.
	KeyFile string
	// BundleFile holds the private key followed by the certificate, PEM:
	// the layout of Kafka's ssl.keystore.type=PEM key store.
	BundleFile string
}

// NewCA makes a CA named commonName and writes its certificate to
// dir/<commonName>-ca.pem. dir must exist; the caller removes it.
func NewCA(dir, commonName string) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("tlstest: empty CA name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlstest: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"driftline tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlstest: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlstest: parse CA certificate: %w", err)
	}
	ca := &CA{CertFile: filepath.Join(dir, commonName+"-ca.pem"), dir: dir, cert: cert, key: key}
	if err := writePEM(ca.CertFile, pemBlock("CERTIFICATE", der)); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issue makes a key pair named name, signed by ca, valid for 127.0.0.1,
// ::1, localhost and hosts (IP addresses or DNS names), for server and
// client authentication. It writes dir/<name>.pem, dir/<name>-key.pem and
// dir/<name>-bundle.pem in the CA's folder; name must be unique per CA.
func (ca *CA) Issue(name string, hosts ...string) (KeyPair, error) {
	if name == "" {
		return KeyPair{}, errors.New("tlstest: empty key pair name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("tlstest: key of %s: %w", name, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"driftline tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("tlstest: certificate of %s: %w", name, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("tlstest: encode key of %s: %w", name, err)
	}
	certPEM, keyPEM := pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", pkcs8)
	kp := KeyPair{
		CertFile:   filepath.Join(ca.dir, name+".pem"),
		KeyFile:    filepath.Join(ca.dir, name+"-key.pem"),
		BundleFile: filepath.Join(ca.dir, name+"-bundle.pem"),
	}
	for path, data := range map[string][]byte{kp.CertFile: certPEM, kp.KeyFile: keyPEM, kp.BundleFile: append(keyPEM, certPEM...)} {
		if err := writePEM(path, data); err != nil {
			return KeyPair{}, err
		}
	}
	return kp, nil
}

// serial is a random positive 120-bit serial number. crypto/rand.Reader
// never fails (Go 1.24+), so rand.Int's error cannot happen.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n.Add(n, big.NewInt(1))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writePEM writes data to path, readable by its owner only: the servers
// refuse nothing, but keys should not be world-readable even in /tmp.
func writePEM(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("tlstest: %w", err)
	}
	return nil
}

// Pool returns a certificate pool that holds the CA's certificate only.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ClientConfig returns a TLS client configuration that trusts ca only and,
// when client is not nil, presents client's certificate (mutual TLS).
func (ca *CA) ClientConfig(client *KeyPair) (*tls.Config, error) {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if client != nil {
		cert, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tlstest: load %s: %w", client.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
