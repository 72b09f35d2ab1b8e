// Package tlsfiles builds a crypto/tls client configuration from PEM files,
// for every connector that dials a server over TLS (Kafka, Redis).
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names a client's TLS material. CAFile (PEM, one or more
// certificates) replaces the system roots when set; CertFile and KeyFile
// (PEM) go together and present a client certificate (mutual TLS).
// ServerName overrides the name checked against the server's certificate
// (default: the host dialed). InsecureSkipVerify turns verification off;
// it is for tests only and is off unless set.
type Files struct {
	CAFile, CertFile, KeyFile, ServerName string
	InsecureSkipVerify                    bool
}

// Validate checks what can be checked without reading the files.
func (f Files) Validate() error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return errors.New("tls.cert_file and tls.key_file go together")
	}
	return nil
}

// Config reads the files and returns the tls.Config (TLS 1.2 or newer).
// Errors name the file at fault.
func (f Files) Config() (*tls.Config, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate found", f.CAFile)
		}
		cfg.RootCAs = pool
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file %s / tls.key_file %s: %w", f.CertFile, f.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
