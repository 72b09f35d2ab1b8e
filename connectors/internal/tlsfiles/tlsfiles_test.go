package tlsfiles_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftline/driftline/connectors/internal/tlsfiles"
	"github.com/driftline/driftline/testkit/tlstest"
)

func TestConfigReadsFilesAndNamesTheOneAtFault(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlstest.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue("client")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsfiles.Files{CAFile: ca.CertFile, CertFile: kp.CertFile, KeyFile: kp.KeyFile, ServerName: "kafka"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.ServerName != "kafka" || cfg.MinVersion != tls.VersionTLS12 || cfg.InsecureSkipVerify {
		t.Errorf("config %+v", cfg)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for want, f := range map[string]tlsfiles.Files{
		"tls.ca_file":                                {CAFile: filepath.Join(dir, "missing.pem")},
		"tls.ca_file " + notPEM + ": no PEM":         {CAFile: notPEM},
		"tls.cert_file " + kp.KeyFile:                {CertFile: kp.KeyFile, KeyFile: kp.KeyFile},
		"tls.cert_file and tls.key_file go together": {CertFile: kp.CertFile},
	} {
		if _, err := f.Config(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: Config = %v; want an error saying %q", f, err, want)
		}
	}
}

// handshake runs a TLS server with srv on a loopback listener (a plaintext one when
// srv is nil) and returns the error of a client handshake with cli.
func handshake(t *testing.T, srv, cli *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if srv == nil {
			c.Write([]byte("-ERR not tls\r\n"))
			return
		}
		tls.Server(c, srv).Handshake() // then close: the client reads EOF or the alert
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err == nil {
		// TLS 1.3 delivers a refused client certificate with the first read.
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	return err
}

func TestExplainNamesTheTLSFailure(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlstest.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlstest.NewCA(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue("server")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(server.CertFile, server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := &tls.Config{Certificates: []tls.Certificate{cert}}
	mtls := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	trustCA := &tls.Config{RootCAs: ca.Pool()}
	for name, tc := range map[string]struct {
		srv, cli *tls.Config
		want     string
	}{
		"unknown CA":       {srv, &tls.Config{RootCAs: other.Pool()}, "TLS verification of the server's certificate failed"},
		"wrong name":       {srv, &tls.Config{RootCAs: ca.Pool(), ServerName: "kafka.example.com"}, "TLS verification of the server's certificate failed"},
		"plaintext server": {nil, trustCA, "the server does not answer in TLS"},
		"no client cert":   {mtls, trustCA, "the server refused the client's certificate"},
	} {
		err := handshake(t, tc.srv, tc.cli)
		if got := tlsfiles.Explain(err); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: Explain(%v) = %q; want %q", name, err, got, tc.want)
		}
	}
	if err := handshake(t, srv, trustCA); !errors.Is(err, io.EOF) {
		t.Errorf("a good handshake then the server's close = %v; want EOF", err)
	}
	if got := tlsfiles.Explain(errors.New("connection refused")); got != "" {
		t.Errorf("Explain of a non-TLS error = %q; want empty", got)
	}
}
