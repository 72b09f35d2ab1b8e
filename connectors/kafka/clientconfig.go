package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/driftline/driftline/connectors/internal/tlsfiles"
	"github.com/driftline/driftline/pipeline"
)

// The SASL mechanisms a ClientConfig supports: the names a spec uses.
const (
	SASLPlain       = pipeline.SASLPlain
	SASLScramSHA256 = pipeline.SASLScramSHA256
	SASLScramSHA512 = pipeline.SASLScramSHA512
	SASLOAuthBearer = pipeline.SASLOAuthBearer
)

// The output compression codecs a ClientConfig supports: the names a spec
// uses.
const (
	CompressionSnappy = pipeline.CompressionSnappy
	CompressionLZ4    = pipeline.CompressionLZ4
	CompressionZstd   = pipeline.CompressionZstd
	CompressionGzip   = pipeline.CompressionGzip
	CompressionNone   = pipeline.CompressionNone
)

// DefaultClientID is the client id sent to the brokers when none is set.
const DefaultClientID = "driftline"

// ClientConfig is how every franz-go client of driftline reaches and
// authenticates to the brokers: the data plane, the label plane, the
// control plane's watermill pub/sub, replay, retrain, the audit forwarder,
// produce, the demo and the read-back all build their clients from one.
// The zero values of the optional fields mean: client id DefaultClientID,
// plaintext, no authentication, snappy compression.
type ClientConfig struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// ClientID is sent to the brokers (quotas, logs). Default DefaultClientID.
	ClientID string
	// TLS, when set, encrypts every connection.
	TLS *TLSConfig
	// SASL, when set, authenticates every connection.
	SASL *SASLConfig
	// Compression is the codec of produced batches: snappy (default), lz4,
	// zstd, gzip or none.
	Compression string
}

// TLSConfig is a client's TLS material, read from PEM files when a client
// is built: CAFile replaces the system roots when set; CertFile and KeyFile
// go together (mutual TLS); ServerName overrides the name checked against
// the broker's certificate (default: the host dialed); InsecureSkipVerify
// is off unless set, and is for tests. connectors/redis takes the same.
type TLSConfig = tlsfiles.Files

// SASLConfig authenticates a client.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
	Mechanism string
	// Username and Password are the PLAIN and SCRAM credentials.
	Username string
	Password pipeline.Secret
	// TokenFile holds the OAUTHBEARER token; it is read again at every
	// authentication, so an external agent can refresh it in place.
	TokenFile string
}

// Validate checks the config; its errors name the field at fault.
func (c ClientConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			return errors.New("kafka: brokers: empty address")
		}
	}
	switch c.Compression {
	case "", CompressionSnappy, CompressionLZ4, CompressionZstd, CompressionGzip, CompressionNone:
	default:
		return fmt.Errorf("kafka: compression: unknown codec %q (want snappy, lz4, zstd, gzip or none)", c.Compression)
	}
	if s := c.SASL; s != nil {
		switch s.Mechanism {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
			if s.Username == "" {
				return fmt.Errorf("kafka: sasl.username is required for %s", s.Mechanism)
			}
			if s.Password.IsZero() {
				return fmt.Errorf("kafka: sasl password is required for %s", s.Mechanism)
			}
		case SASLOAuthBearer:
			if s.TokenFile == "" {
				return fmt.Errorf("kafka: sasl.token_file is required for %s", s.Mechanism)
			}
		default:
			return fmt.Errorf("kafka: sasl.mechanism: unknown mechanism %q (want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)", s.Mechanism)
		}
	}
	if t := c.TLS; t != nil {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
	}
	return nil
}

// clientOpts are the kgo options every client built from c starts with:
// seed brokers, client id, TLS, SASL and compression.
func (c ClientConfig) clientOpts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(cmp.Or(c.ClientID, DefaultClientID)),
		kgo.ProducerBatchCompression(codec(c.Compression)),
	}
	if c.TLS != nil {
		tc, err := c.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL.mechanism()))
	}
	if lvl, ok := clientLogLevel(); ok {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, lvl, func() string {
			return time.Now().UTC().Format("15:04:05.000 ") + "[franz-go " + cmp.Or(c.ClientID, DefaultClientID) + "] "
		})))
	}
	return opts, nil
}

// ClientLogEnv names the environment variable that turns on franz-go's
// own log, to stderr, for every client a connector builds: "debug",
// "info", "warn" or "error". It is for finding out why a client waits
// (a group that does not rejoin, offsets that stay unstable), not for
// production logging: at debug it logs every request.
const ClientLogEnv = "DRIFTLINE_KAFKA_CLIENT_LOG"

// clientLogLevel reads ClientLogEnv; ok is false when it is unset or
// names no level.
func clientLogLevel() (kgo.LogLevel, bool) {
	switch strings.ToLower(os.Getenv(ClientLogEnv)) {
	case "debug":
		return kgo.LogLevelDebug, true
	case "info":
		return kgo.LogLevelInfo, true
	case "warn":
		return kgo.LogLevelWarn, true
	case "error":
		return kgo.LogLevelError, true
	}
	return kgo.LogLevelNone, false
}

// NewFranzClient validates c and builds a franz-go client from it: seed
// brokers, client id, TLS, SASL and compression, then extra, the caller's
// own options (consuming, producing, tuning), which come last and so may
// override them. It does not contact the brokers; see Check. Only
// connectors build franz-go clients: everything else goes through a
// connector.
func (c ClientConfig) NewFranzClient(extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.clientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new client: %w", err)
	}
	return cl, nil
}

func (s *SASLConfig) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha512Mechanism()
	default: // SASLOAuthBearer; Validate admits no other
		file := s.TokenFile
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return oauth.Auth{}, &tokenFileError{fmt.Errorf("sasl.token_file: %w", err)}
			}
			tok := strings.TrimSpace(string(b))
			if tok == "" {
				return oauth.Auth{}, &tokenFileError{fmt.Errorf("sasl.token_file %s is empty", file)}
			}
			return oauth.Auth{Token: tok}, nil
		})
	}
}

// tokenFileError is a failure to read the OAUTHBEARER token file.
type tokenFileError struct{ err error }

func (e *tokenFileError) Error() string { return e.err.Error() }
func (e *tokenFileError) Unwrap() error { return e.err }

func codec(name string) kgo.CompressionCodec {
	switch name {
	case CompressionLZ4:
		return kgo.Lz4Compression()
	case CompressionZstd:
		return kgo.ZstdCompression()
	case CompressionGzip:
		return kgo.GzipCompression()
	case CompressionNone:
		return kgo.NoCompression()
	}
	return kgo.SnappyCompression()
}
