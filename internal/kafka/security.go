package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	kscram "github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/xdg-go/scram"
)

// Security is how minipipe's clients protect and authenticate their connections to Kafka: TLS (nil:
// plaintext) and SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: none). Every client minipipe opens —
// sarama under goka, franz-go producers, admin clients — uses it.
type Security struct {
	TLS       *tls.Config
	Mechanism string
	User      string
	Password  string
}

// The SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// ParseMechanism reads a SASL mechanism name (any case); "" is none.
func ParseMechanism(s string) (string, error) {
	switch m := strings.ToUpper(strings.TrimSpace(s)); m {
	case "", SASLPlain, SASLScramSHA256, SASLScramSHA512:
		return m, nil
	}
	return "", fmt.Errorf("SASL mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s)
}

// Check says whether the settings go together.
func (s Security) Check() error {
	m, err := ParseMechanism(s.Mechanism)
	if err != nil {
		return err
	}
	if m != "" && (s.User == "" || s.Password == "") {
		return fmt.Errorf("SASL %s needs a user name and a password", m)
	}
	if m == "" && (s.User != "" || s.Password != "") {
		return errors.New("a SASL user name or password without a mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
	}
	return nil
}

// String describes the settings without the password.
func (s Security) String() string {
	var parts []string
	if s.TLS != nil {
		parts = append(parts, "TLS")
	}
	if s.Mechanism != "" {
		parts = append(parts, "SASL "+strings.ToUpper(s.Mechanism)+" as "+s.User)
	}
	if len(parts) == 0 {
		return "plaintext"
	}
	return strings.Join(parts, ", ")
}

// sarama applies the settings to a sarama configuration.
func (s Security) sarama(cfg *sarama.Config) {
	if s.TLS != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = s.TLS.Clone()
	}
	m, _ := ParseMechanism(s.Mechanism)
	if m == "" {
		return
	}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.User = s.User
	cfg.Net.SASL.Password = s.Password
	switch m {
	case SASLPlain:
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case SASLScramSHA256:
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case SASLScramSHA512:
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	}
}

// kgo are the settings as franz-go options.
func (s Security) kgo() []kgo.Opt {
	var opts []kgo.Opt
	if s.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(s.TLS.Clone()))
	}
	var mech sasl.Mechanism
	switch m, _ := ParseMechanism(s.Mechanism); m {
	case SASLPlain:
		mech = plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
	case SASLScramSHA256:
		mech = kscram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		mech = kscram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts
}

// scramClient is sarama's SCRAM conversation, on xdg-go/scram.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = cl.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }

// ErrAuth marks an error that retrying cannot fix: the broker refused minipipe's credentials or its TLS
// handshake failed for good (an unknown certificate authority, a wrong server name, a plaintext port).
var ErrAuth = errors.New("the Kafka connection's credentials or TLS settings were refused")

// permanentTLS are the TLS failures that say the settings are wrong, not that the network hiccuped.
var permanentTLS = []string{
	"x509: ",
	"first record does not look like a TLS handshake",
	"tls: bad certificate",
	"tls: unknown certificate authority",
	"tls: certificate required",
	"tls: unknown certificate",
	"tls: unsupported certificate",
	"tls: certificate unknown",
	"tls: protocol version not supported",
}

// Fatal says whether err is a refusal of credentials or TLS settings, which retrying cannot fix, and
// wraps it with ErrAuth; nil otherwise.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	var certErr *tls.CertificateVerificationError
	fatal := errors.Is(err, sarama.ErrSASLAuthenticationFailed) || errors.Is(err, sarama.ErrIllegalSASLState) ||
		errors.Is(err, sarama.ErrUnsupportedSASLMechanism) || errors.As(err, &certErr)
	msg := err.Error()
	for _, s := range append([]string{"SASL_AUTHENTICATION_FAILED", "SASL Authentication failed"}, permanentTLS...) {
		fatal = fatal || strings.Contains(msg, s)
	}
	if !fatal {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrAuth, err)
}
