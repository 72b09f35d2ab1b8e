package kafkatest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/driftline/driftline/testkit/tlstest"
)

// brokerUser is the broker's own SCRAM user: it authenticates the broker to its own
// SASL_SSL listener (inter-broker traffic such as transaction markers) and is the user
// of the Broker's admin client.
const brokerUser = "broker"

// SASLSSLOptions configure a broker started by StartSASLSSL.
type SASLSSLOptions struct {
	// Users are the client users, created at format time with SCRAM-SHA-512 and
	// SCRAM-SHA-256 credentials, and also known to the PLAIN mechanism. Default: one
	// user "driftline" with a random password. Names and passwords are letters,
	// digits, '-' and '_'; a name must not be "broker" (the broker's own user).
	Users []User
}

// User is a SASL user of the broker.
type User struct{ Name, Password string }

// SASLSSL is what a client needs to reach a broker whose only client listener is
// SASL_SSL.
//
// The listener takes SCRAM-SHA-512, SCRAM-SHA-256, PLAIN and OAUTHBEARER. OAUTHBEARER
// uses Kafka's unsecured token validator (tokens made by UnsecuredToken: no signature,
// for tests only). The broker's certificate names 127.0.0.1, ::1 and localhost; no
// client certificate is asked for.
type SASLSSL struct {
	// CAFile is the PEM certificate of the CA that signed the broker's certificate.
	CAFile string
	// CA is that CA, to issue more certificates.
	CA *tlstest.CA
	// Username and Password are the first of the Users.
	Username, Password string
	// Users are every client user (SASLSSLOptions.Users or the default).
	Users []User

	brokerPassword string
	keyPair        tlstest.KeyPair
}

var saslWord = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// newSASLSSL makes the users' defaults, the CA and the broker's key pair in dir.
func newSASLSSL(dir string, opts SASLSSLOptions) (*SASLSSL, error) {
	users := opts.Users
	if len(users) == 0 {
		users = []User{{Name: "driftline", Password: randomWord()}}
	}
	for i, u := range users {
		if !saslWord.MatchString(u.Name) || !saslWord.MatchString(u.Password) || u.Name == brokerUser {
			return nil, fmt.Errorf("users[%d]: name %q and its password must be letters, digits, '-' and '_', and the name not %q", i, u.Name, brokerUser)
		}
	}
	ca, err := tlstest.NewCA(dir, "kafka")
	if err != nil {
		return nil, err
	}
	kp, err := ca.Issue("broker")
	if err != nil {
		return nil, err
	}
	return &SASLSSL{
		CAFile: ca.CertFile, CA: ca,
		Username: users[0].Name, Password: users[0].Password, Users: users,
		brokerPassword: randomWord(), keyPair: kp,
	}, nil
}

// formatArgs create every SCRAM credential in the cluster metadata at format time.
func (s *SASLSSL) formatArgs() []string {
	var args []string
	for _, u := range append([]User{{brokerUser, s.brokerPassword}}, s.Users...) {
		for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256"} {
			args = append(args, "--add-scram", fmt.Sprintf("%s=[name=%s,password=%s]", mech, u.Name, u.Password))
		}
	}
	return args
}

// properties are the server.properties lines of a broker whose client and
// inter-broker listener is SASL_SSL at addr; the controller listener at ctrl stays
// plaintext, on the loopback, for the node's own controller.
func (s *SASLSSL) properties(addr, ctrl string) []string {
	plainUsers := []string{fmt.Sprintf(`user_%s="%s"`, brokerUser, s.brokerPassword)}
	for _, u := range s.Users {
		plainUsers = append(plainUsers, fmt.Sprintf(`user_%s="%s"`, u.Name, u.Password))
	}
	scramLogin := fmt.Sprintf(`org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";`, brokerUser, s.brokerPassword)
	return []string{
		"listeners=SASL_SSL://" + addr + ",CONTROLLER://" + ctrl,
		"advertised.listeners=SASL_SSL://" + addr,
		"inter.broker.listener.name=SASL_SSL",
		"controller.listener.names=CONTROLLER",
		"listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
		"sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN,OAUTHBEARER",
		"sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
		"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=" + scramLogin,
		"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=" + scramLogin,
		fmt.Sprintf(`listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="%s" password="%s" %s;`,
			brokerUser, s.brokerPassword, strings.Join(plainUsers, " ")),
		fmt.Sprintf(`listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="%s";`, brokerUser),
		"ssl.keystore.type=PEM",
		"ssl.keystore.location=" + s.keyPair.BundleFile,
		"ssl.truststore.type=PEM",
		"ssl.truststore.location=" + s.CAFile,
		"ssl.client.auth=none",
	}
}

// clientOpts are the kgo options of testkit's own clients of the broker (its admin
// client, Broker.Client): TLS trusting the CA, SCRAM-SHA-512 as the broker's user.
func (s *SASLSSL) clientOpts() ([]kgo.Opt, error) {
	tc, err := s.CA.ClientConfig(nil)
	if err != nil {
		return nil, err
	}
	return []kgo.Opt{
		kgo.DialTLSConfig(tc),
		kgo.SASL(scram.Auth{User: brokerUser, Pass: s.brokerPassword}.AsSha512Mechanism()),
	}, nil
}

// UnsecuredToken returns an unsigned JSON Web Token for subject, valid for lifetime,
// that the SASL_SSL broker's OAUTHBEARER mechanism accepts (Kafka's unsecured
// validator: for tests only, never a production token).
func UnsecuredToken(tb testing.TB, subject string, lifetime time.Duration) string {
	tb.Helper()
	if subject == "" || lifetime <= 0 {
		tb.Fatalf("kafkatest: UnsecuredToken needs a subject and a positive lifetime")
	}
	now := time.Now()
	claims, err := json.Marshal(map[string]any{"sub": subject, "iat": now.Unix(), "exp": now.Add(lifetime).Unix()})
	if err != nil {
		tb.Fatalf("kafkatest: token claims: %v", err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc(claims) + "."
}

// randomWord is a random 24-character password of letters and digits.
func randomWord() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [24]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
