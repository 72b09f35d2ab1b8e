package pipeline

import (
	"strings"
)

// The Kafka SASL mechanisms a spec may name (kafka.sasl.mechanism);
// connectors/kafka accepts the same names.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLOAuthBearer = "OAUTHBEARER"
)

// The Kafka output compression codecs a spec may name (kafka.compression);
// connectors/kafka accepts the same names. Empty means snappy.
const (
	CompressionSnappy = "snappy"
	CompressionLZ4    = "lz4"
	CompressionZstd   = "zstd"
	CompressionGzip   = "gzip"
	CompressionNone   = "none"
)

// The Redis deployment modes a spec may name (redis.mode); connectors/redis
// accepts the same names. Empty means standalone.
const (
	RedisStandalone = "standalone"
	RedisSentinel   = "sentinel"
	RedisCluster    = "cluster"
)

// validateConnections checks how the spec reaches Kafka and Redis: TLS,
// SASL, compression, the Redis mode and credentials. Secrets are named by
// an environment variable or a file, never written in the spec.
func (s *Spec) validateConnections(add func(path, format string, args ...any)) {
	k := &s.Kafka
	switch k.Compression {
	case "", CompressionSnappy, CompressionLZ4, CompressionZstd, CompressionGzip, CompressionNone:
	default:
		add("kafka.compression", "unknown codec %q (want snappy, lz4, zstd, gzip or none)", k.Compression)
	}
	validateTLS("kafka.tls", k.TLS, add)
	if sa := k.SASL; sa != nil {
		validateSASL(sa, add)
	}

	r := &s.Redis
	switch r.Mode {
	case "", RedisStandalone:
		if len(r.Addrs) > 1 {
			add("redis.addrs", "mode standalone takes one address, got %d (mode sentinel or cluster takes several)", len(r.Addrs))
		}
		if r.MasterName != "" {
			add("redis.master_name", "applies to mode sentinel only")
		}
	case RedisSentinel:
		if r.MasterName == "" {
			add("redis.master_name", "is required with mode sentinel (the name the sentinels know the primary by)")
		}
		if r.Addr == "" && len(r.Addrs) == 0 {
			add("redis.addrs", "mode sentinel needs the sentinels' addresses")
		}
	case RedisCluster:
		if r.DB != 0 {
			add("redis.db", "must be 0 with mode cluster (a Cluster has one database), got %d", r.DB)
		}
		if r.MasterName != "" {
			add("redis.master_name", "applies to mode sentinel only")
		}
		if r.Addr == "" && len(r.Addrs) == 0 {
			add("redis.addrs", "mode cluster needs at least one seed node's address")
		}
	default:
		add("redis.mode", "unknown mode %q (want standalone, sentinel or cluster)", r.Mode)
	}
	if r.Addr != "" && len(r.Addrs) > 0 {
		add("redis.addrs", "set addr (one server) or addrs, not both")
	}
	for i, a := range r.Addrs {
		if strings.TrimSpace(a) == "" {
			add("redis.addrs", "address %d is empty", i)
		}
	}
	if r.DB < 0 {
		add("redis.db", "must not be negative, got %d", r.DB)
	}
	if r.Timeout < 0 {
		add("redis.timeout", "must not be negative, got %s", r.Timeout.D())
	}
	if r.Password != "" {
		add("redis.password", "a password is never written in the spec: set redis.password_env (an environment variable) or redis.password_file (a file) instead")
	}
	if r.PasswordEnv != "" && r.PasswordFile != "" {
		add("redis.password_env", "set password_env or password_file, not both")
	}
	if r.Username != "" && !r.PasswordRef().IsSet() {
		add("redis.username", "an ACL user needs a password: set redis.password_env or redis.password_file")
	}
	if r.Mode == RedisCluster && !r.HashTag {
		add("redis.hash_tag", "must be true with mode cluster: dedupe, the entity aggregates and the label join each run scripts over several keys, which a Cluster allows only within one slot")
	}
	if r.HashTag && strings.ContainsAny(r.KeyPrefix, "{}") {
		add("redis.key_prefix", "must not contain { or } with hash_tag: true (the prefix becomes the hash tag), got %q", r.KeyPrefix)
	}
	validateTLS("redis.tls", r.TLS, add)
}

func validateSASL(sa *SASLSpec, add func(path, format string, args ...any)) {
	const p = "kafka.sasl."
	switch sa.Mechanism {
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if sa.Password != "" {
			add(p+"password", "a password is never written in the spec: set kafka.sasl.password_env (an environment variable) or kafka.sasl.password_file (a file) instead")
		}
		if sa.Username == "" {
			add(p+"username", "is required with mechanism %s", sa.Mechanism)
		}
		switch {
		case sa.PasswordEnv != "" && sa.PasswordFile != "":
			add(p+"password_env", "set password_env or password_file, not both")
		case !sa.PasswordRef().IsSet():
			add(p+"password_env", "mechanism %s needs a password: set password_env (an environment variable) or password_file (a file)", sa.Mechanism)
		}
		if sa.TokenFile != "" {
			add(p+"token_file", "applies to mechanism OAUTHBEARER only")
		}
	case SASLOAuthBearer:
		if sa.TokenFile == "" {
			add(p+"token_file", "is required with mechanism OAUTHBEARER (a file that holds the token, read again at every authentication)")
		}
		if sa.Username != "" || sa.Password != "" || sa.PasswordRef().IsSet() {
			add(p+"username", "username, password_env and password_file apply to PLAIN and SCRAM only; OAUTHBEARER reads token_file")
		}
	case "":
		add(p+"mechanism", "is required (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)")
	default:
		add(p+"mechanism", "unknown mechanism %q (want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)", sa.Mechanism)
	}
}

func validateTLS(path string, t *TLSSpec, add func(path, format string, args ...any)) {
	if t == nil {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		add(path+".cert_file", "cert_file and key_file go together (a client certificate and its key, for mutual TLS)")
	}
}
