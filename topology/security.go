package topology

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/tlsconf"
)

// KafkaPasswordEnv is the environment variable that may hold the SASL password (instead of a file).
const KafkaPasswordEnv = "MINIPIPE_KAFKA_SASL_PASSWORD"

// IcebergRESTCredentialEnv is the environment variable that may hold the REST catalog's credential.
const IcebergRESTCredentialEnv = "MINIPIPE_ICEBERG_REST_CREDENTIAL"

// RESTCredential is how minipipe authenticates to an Iceberg REST catalog: OAuth2 client credentials or a
// bearer token (or neither).
type RESTCredential struct{ ClientCredentials, Token string }

// IcebergRESTCredential reads --iceberg-rest-credential-file or MINIPIPE_ICEBERG_REST_CREDENTIAL: CLIENT_ID:SECRET,
// or token:BEARER. Errors name the file, never the secret.
func (c *Config) IcebergRESTCredential() (RESTCredential, error) {
	var v string
	switch {
	case c.IcebergRESTCredentialFile != "":
		b, err := os.ReadFile(filepath.Clean(c.IcebergRESTCredentialFile))
		if err != nil {
			return RESTCredential{}, fmt.Errorf("--iceberg-rest-credential-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if v = strings.TrimSpace(line); v == "" {
			return RESTCredential{}, fmt.Errorf("--iceberg-rest-credential-file %s: its first line is empty", c.IcebergRESTCredentialFile)
		}
	case os.Getenv(IcebergRESTCredentialEnv) != "":
		v = strings.TrimSpace(os.Getenv(IcebergRESTCredentialEnv))
	default:
		return RESTCredential{}, nil
	}
	if tok, ok := strings.CutPrefix(v, "token:"); ok && tok != "" {
		return RESTCredential{Token: tok}, nil
	}
	if id, secret, ok := strings.Cut(v, ":"); ok && id != "" && secret != "" {
		return RESTCredential{ClientCredentials: v}, nil
	}
	return RESTCredential{}, fmt.Errorf("the Iceberg REST credential (--iceberg-rest-credential-file or %s) is neither CLIENT_ID:SECRET nor token:BEARER", IcebergRESTCredentialEnv)
}

// KafkaSecurity reads the Kafka TLS and SASL settings: the PEM files, and the password from
// --kafka-sasl-password-file or MINIPIPE_KAFKA_SASL_PASSWORD. Errors name files and flags, never the
// password.
func (c *Config) KafkaSecurity() (kafka.Security, error) {
	var s kafka.Security
	if c.KafkaTLS || c.KafkaTLSCA != "" || c.KafkaTLSCert != "" || c.KafkaTLSKey != "" || c.KafkaTLSServerName != "" {
		cfg, err := tlsconf.ClientConfig(c.KafkaTLSCA, c.KafkaTLSCert, c.KafkaTLSKey, c.KafkaTLSServerName)
		if err != nil {
			return s, fmt.Errorf("--kafka-tls-*: %w", err)
		}
		s.TLS = cfg
	}
	m, err := kafka.ParseMechanism(c.KafkaSASLMechanism)
	if err != nil {
		return s, fmt.Errorf("--kafka-sasl-mechanism: %w", err)
	}
	s.Mechanism, s.User = m, c.KafkaSASLUsername
	switch {
	case c.KafkaSASLPasswordFile != "":
		b, err := os.ReadFile(filepath.Clean(c.KafkaSASLPasswordFile))
		if err != nil {
			return s, fmt.Errorf("--kafka-sasl-password-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		s.Password = strings.TrimRight(line, "\r")
		if s.Password == "" {
			return s, fmt.Errorf("--kafka-sasl-password-file %s: its first line is empty", c.KafkaSASLPasswordFile)
		}
	case os.Getenv(KafkaPasswordEnv) != "":
		s.Password = os.Getenv(KafkaPasswordEnv)
	}
	if err := s.Check(); err != nil {
		switch {
		case m != "" && s.User == "":
			return s, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-username", m)
		case m != "" && s.Password == "":
			return s, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-password-file or %s", m, KafkaPasswordEnv)
		case m == "" && s.User != "":
			return s, errors.New("--kafka-sasl-username needs --kafka-sasl-mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
		case m == "":
			return kafka.Security{TLS: s.TLS}, nil // a password in the environment, unused
		}
		return s, err
	}
	return s, nil
}

// KafkaConfig is how a subcommand reaches Kafka: the brokers and the security settings.
func (c *Config) KafkaConfig(clientID string) (kafka.Config, error) {
	sec, err := c.KafkaSecurity()
	if err != nil {
		return kafka.Config{}, err
	}
	return kafka.Config{Brokers: c.Brokers, ClientID: clientID, Security: sec}, nil
}

// loopback says whether a listen address is reachable from this machine only: localhost or a loopback IP.
// An empty host (every interface), a wildcard or any other name is not.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkExposure refuses listeners reachable from other machines with no users file, unless
// --insecure-no-auth says that is meant.
func (c *Config) checkExposure() error {
	if c.AuthFile != "" || c.InsecureNoAuth {
		return nil
	}
	for _, l := range c.listeners() {
		if !loopback(l[1]) {
			return fmt.Errorf("--%s %s is reachable from other machines and nobody would need to log in: give --auth-file with its users "+
				"(`minipipe user add NAME --roles reader,producer --auth-file FILE`), or --insecure-no-auth to serve without authentication", l[0], l[1])
		}
	}
	return nil
}

// exposed lists the listeners reachable from other machines.
func (c *Config) exposed() []string {
	var out []string
	for _, l := range c.listeners() {
		if !loopback(l[1]) {
			out = append(out, "--"+l[0]+" "+l[1])
		}
	}
	return out
}

func (c *Config) listeners() [][2]string {
	return [][2]string{{"rest-addr", c.RestAddr}, {"registry-addr", c.RegistryAddr}, {"http-addr", c.HTTPAddr}}
}
