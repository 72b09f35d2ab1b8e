package redistest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/driftline/driftline/testkit/tlstest"
)

// Options configure a real redis-server. The zero Options is the server StartRedis
// starts: no password, plaintext.
type Options struct {
	// Password is the default user's password (requirepass). Empty leaves the default
	// user without one.
	Password string
	// Users are ACL users created at start, besides the default user.
	Users []User
	// TLS serves TLS only, with no plaintext port: the server's certificate is signed
	// by CA, and Redis.TLS holds what a client needs.
	TLS bool
	// ClientAuth makes a TLS server require a client certificate signed by CA (mutual
	// TLS). It needs TLS.
	ClientAuth bool
	// CA signs the server's certificate and the client certificate in Redis.TLS. Nil
	// means a CA made for this server. Servers that talk to each other over TLS (a
	// Sentinel, its primary and replicas; the nodes of a Cluster) share one, and
	// StartSentinel and StartCluster make one when it is nil.
	CA *tlstest.CA
	// Persist keeps the dataset across Stop and Start, as a production
	// server does: the server writes an RDB snapshot when it shuts down and
	// loads it when it starts (answering LOADING until it has).
	Persist bool
	// KeyLoadDelay slows the loading of each key at start (redis.conf
	// key-load-delay, in whole microseconds), so that a test sees a server
	// with Persist answer LOADING for a while after Start.
	KeyLoadDelay time.Duration
}

// User is an ACL user.
type User struct {
	Name, Password string
	// Rules are the user's ACL rules (see ACL SETUSER), e.g. "~app:*", "+get".
	// Default: every key, channel and command ("~*", "&*", "+@all").
	Rules []string
}

// TLSFiles is what a client needs to reach a TLS server: the CA that signed the
// server's certificate, and a client certificate signed by it (for mutual TLS).
type TLSFiles struct {
	CAFile, CertFile, KeyFile string

	ca     *tlstest.CA
	client tlstest.KeyPair
}

// ClientConfig returns a TLS client configuration that trusts the CA only and
// presents the client certificate.
func (f *TLSFiles) ClientConfig() (*tls.Config, error) { return f.ca.ClientConfig(&f.client) }

// serverTLS is a server's TLS material: its own key pair and the client's.
type serverTLS struct {
	server tlstest.KeyPair
	client TLSFiles
}

func (o Options) validate() error {
	if o.ClientAuth && !o.TLS {
		return errors.New("options: ClientAuth needs TLS")
	}
	if o.CA != nil && !o.TLS {
		return errors.New("options: CA needs TLS")
	}
	if o.KeyLoadDelay < 0 || o.KeyLoadDelay > 0 && !o.Persist {
		return errors.New("options: KeyLoadDelay needs Persist (and must not be negative)")
	}
	if err := confWord("password", o.Password); err != nil {
		return err
	}
	for i, u := range o.Users {
		if u.Name == "" || u.Name == "default" {
			return fmt.Errorf("options: users[%d]: name %q: want a name other than default (use Password for the default user)", i, u.Name)
		}
		for _, w := range append([]string{u.Name, u.Password}, u.Rules...) {
			if err := confWord(fmt.Sprintf("users[%d]", i), w); err != nil {
				return err
			}
		}
	}
	return nil
}

// confWord refuses what would need quoting in redis.conf; tests choose simple words.
func confWord(what, w string) error {
	if strings.ContainsAny(w, " \t\r\n\"'\\") {
		return fmt.Errorf("options: %s must not contain spaces, quotes or backslashes", what)
	}
	return nil
}

// tlsFiles makes the server's and the client's key pairs in dir, with a new CA
// unless o.CA is set; nil without TLS.
func (o Options) tlsFiles(dir string) (*serverTLS, error) {
	if !o.TLS {
		return nil, nil
	}
	ca := o.CA
	if ca == nil {
		var err error
		if ca, err = tlstest.NewCA(dir, "redis"); err != nil {
			return nil, err
		}
	}
	// The server's folder name is unique, also among servers that share a CA (the
	// port is not chosen yet).
	name := filepath.Base(dir)
	server, err := ca.Issue(name + "-server")
	if err != nil {
		return nil, err
	}
	client, err := ca.Issue(name + "-client")
	if err != nil {
		return nil, err
	}
	return &serverTLS{server: server, client: TLSFiles{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile, ca: ca, client: client}}, nil
}

// conf is the redis.conf of a server on port, working in dir: persistence off,
// loopback only, with o's credentials and TLS.
func (o Options) conf(dir string, port int, files *serverTLS) []string {
	lines := []string{
		"bind 127.0.0.1",
		`save ""`,
		"appendonly no",
		"dir " + dir,
		"daemonize no",
		"loglevel notice",
	}
	if o.Persist {
		// A save point makes the server snapshot at shutdown (SIGTERM).
		lines = append(lines, "save 3600 1", "dbfilename "+fmt.Sprintf("dump-%d.rdb", port))
		if o.KeyLoadDelay > 0 {
			lines = append(lines, "key-load-delay "+strconv.FormatInt(o.KeyLoadDelay.Microseconds(), 10),
				"loading-process-events-interval-bytes 1024")
		}
	}
	if files == nil {
		lines = append(lines, "port "+strconv.Itoa(port))
	} else {
		auth := "no"
		if o.ClientAuth {
			auth = "yes"
		}
		lines = append(lines,
			"port 0",
			"tls-port "+strconv.Itoa(port),
			"tls-cert-file "+files.server.CertFile,
			"tls-key-file "+files.server.KeyFile,
			"tls-ca-cert-file "+files.client.CAFile,
			"tls-auth-clients "+auth,
			// Replication and the cluster bus use TLS too, with the server's own
			// certificate as the client certificate.
			"tls-replication yes",
			"tls-cluster yes",
		)
	}
	if o.Password != "" {
		lines = append(lines, "requirepass "+o.Password)
	}
	for _, u := range o.Users {
		rules := u.Rules
		if len(rules) == 0 {
			rules = []string{"~*", "&*", "+@all"}
		}
		lines = append(lines, "user "+u.Name+" on >"+u.Password+" "+strings.Join(rules, " "))
	}
	return lines
}
