package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
)

// Explain says in words what a TLS failure of a client connection means, or
// returns "" when err is no TLS failure it knows. The words name the spec
// fields to check; they never hold a secret.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return "TLS verification of the server's certificate failed (is tls.ca_file the CA that signed it, and does tls.server_name or the address match its names?)"
	case errors.As(err, &header):
		return "the server does not answer in TLS (is TLS on at this address?)"
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the server (crypto/tls reports it as a net.OpError
		// around an unexported alert type).
		if strings.Contains(op.Err.Error(), "certificate") {
			return "the server refused the client's certificate (mutual TLS: check tls.cert_file and tls.key_file, and the CA the server trusts)"
		}
		return "the server ended the TLS handshake"
	}
	return ""
}
