package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

func TestIssuedPairVerifiesForEveryNameAndBothSides(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue("node", "10.1.2.3", "kafka.internal")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(kp.BundleFile, kp.BundleFile); err != nil {
		t.Fatalf("the bundle does not hold the key and the certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "::1", "localhost", "10.1.2.3", "kafka.internal"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("name %s, usage %v: %v", name, usage, err)
			}
		}
	}
	other, err := NewCA(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: other.Pool(), DNSName: "localhost"}); err == nil {
		t.Error("another CA verified the certificate")
	}
	if st, err := os.Stat(kp.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", st.Mode(), err)
	}
}
