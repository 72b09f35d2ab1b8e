package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
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
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return "TLS verification of the server's certificate failed (is tls.ca_file the CA that signed it, and does tls.server_name or the address match its names?)"
	case errors.As(err, &header):
		return "the server does not answer in TLS (is TLS on at this address?)"
	case errors.As(err, &alert):
		switch uint8(alert) {
		case 42, 43, 44, 45, 46, 48, 116: // bad_certificate … unknown_ca, certificate_required
			return "the server refused the client's certificate (mutual TLS: check tls.cert_file and tls.key_file, and the CA the server trusts)"
		}
		return "the server ended the TLS handshake"
	}
	return ""
}
