// Package registry is minipipe's Confluent-compatible Schema Registry. Its state is event-sourced through a
// compacted Kafka topic: every instance reads it from a local Pebble-backed goka view, and writes go as
// commands through a single-partition topic to whichever instance's goka processor owns that partition, so
// that ids are assigned by one owner and the same schema gets the same id whichever instance is asked.
package registry

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/minipipe/minipipe/internal/auth"
	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/internal/supervise"
	"github.com/minipipe/minipipe/state"
)

// Config configures the registry.
type Config struct {
	// Topic is the compacted topic holding the registry's state (default _minipipe_schemas).
	Topic string
	// CommandTopic carries write requests to the owner (default _minipipe_schemas_commands).
	CommandTopic string
	// Group is the consumer group of the owner election (default _minipipe_registry).
	Group string
	// Timeout bounds a write request, from the request to the reply (default 15s).
	Timeout time.Duration
	// MaxSchemaBytes limits the size of a schema (default 1 MiB).
	MaxSchemaBytes int
	// Monitor watches the owner's processor (nil: none).
	Monitor *supervise.Monitor
}

func (c *Config) defaults() {
	if c.Topic == "" {
		c.Topic = "_minipipe_schemas"
	}
	if c.CommandTopic == "" {
		c.CommandTopic = c.Topic + "_commands"
	}
	if c.Group == "" {
		c.Group = "_minipipe_registry"
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.MaxSchemaBytes <= 0 {
		c.MaxSchemaBytes = 1 << 20
	}
}

// Registry serves the Schema Registry API's logic; its HTTP face is Handler.
type Registry struct {
	cfg   Config
	kcfg  kafka.Config
	gk    *kafka.Goka
	log   *slog.Logger
	store *Store

	view     *goka.View
	emitter  *goka.Emitter
	producer sarama.SyncProducer
	client   sarama.Client

	leaderMu sync.Mutex  // one command at a time, even across a rebalance
	loaded   atomic.Bool // the store has caught up once: reads are served from it from then on
}

// New prepares a registry; Run starts it.
func New(cfg Config, kcfg kafka.Config, gk *kafka.Goka, log *slog.Logger) (*Registry, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	r := &Registry{cfg: cfg, kcfg: kcfg, gk: gk, log: log.With("component", "registry"), store: newStore(log.With("component", "registry-store"))}
	tm, err := gk.TopicManager()
	if err != nil {
		return nil, fmt.Errorf("registry: topic manager: %w", err)
	}
	defer tm.Close()
	if err := tm.EnsureTableExists(cfg.Topic, 1); err != nil {
		return nil, fmt.Errorf("registry: create %s: %w", cfg.Topic, err)
	}
	if err := tm.EnsureStreamExists(cfg.CommandTopic, 1); err != nil {
		return nil, fmt.Errorf("registry: create %s: %w", cfg.CommandTopic, err)
	}
	viewOpts := []goka.ViewOption{goka.WithViewCallback(r.store.update)}
	if b := gk.StorageBuilder(); b != nil {
		viewOpts = append(viewOpts, goka.WithViewStorageBuilder(state.Resuming(b, r.store.advance)))
	}
	r.view, err = goka.NewView(kcfg.Brokers, goka.Table(cfg.Topic), new(codec.Bytes), gk.ViewOptions(viewOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("registry: view: %w", err)
	}
	r.store.view = r.view
	r.emitter, err = goka.NewEmitter(kcfg.Brokers, goka.Stream(cfg.CommandTopic), new(codec.Bytes), gk.EmitterOptions()...)
	if err != nil {
		return nil, fmt.Errorf("registry: emitter: %w", err)
	}
	sc := kcfg.Sarama()
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	r.client, err = sarama.NewClient(kcfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("registry: kafka client: %w", err)
	}
	r.producer, err = sarama.NewSyncProducerFromClient(r.client)
	if err != nil {
		return nil, fmt.Errorf("registry: producer: %w", err)
	}
	return r, nil
}

func (r *Registry) newProcessor() (*goka.Processor, error) {
	graph := goka.DefineGroup(goka.Group(r.cfg.Group),
		goka.Input(goka.Stream(r.cfg.CommandTopic), new(codec.Bytes), r.handle),
	)
	return goka.NewProcessor(r.kcfg.Brokers, graph, r.gk.ProcessorOptions()...)
}

// Store is the registry's local read model.
func (r *Registry) Store() *Store { return r.store }

// Run runs the view and the owner election until ctx ends. Kafka going away is no reason to stop: the view
// reconnects by itself, and the owner's processor is rebuilt with backoff whenever it fails.
func (r *Registry) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	viewDone := make(chan error, 1)
	go func() { viewDone <- r.view.Run(ctx) }()
	procDone := make(chan struct{})
	go func() {
		defer close(procDone)
		supervise.Run(ctx, r.log, "registry owner", r.newProcessor, r.cfg.Monitor)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-viewDone:
		viewDone <- err
	}
	cancel()
	<-procDone
	verr := <-viewDone
	r.emitter.Finish()
	r.producer.Close()
	r.client.Close()
	if verr != nil && ctx.Err() == nil {
		return fmt.Errorf("registry: %w", verr)
	}
	return nil
}

// Ready reports whether the local store has caught up with the registry topic (once: it then serves
// reads whatever Kafka does).
func (r *Registry) Ready() bool {
	if r.loaded.Load() {
		return true
	}
	if r.view.Recovered() {
		r.loaded.Store(true)
		return true
	}
	return false
}

// waitReady blocks until the store has loaded or the context ends. Once it has, reads never wait again:
// with Kafka gone (the view reconnecting) they are answered from the local store, as it was when Kafka
// went away.
func (r *Registry) waitReady(ctx context.Context) error {
	for !r.Ready() {
		select {
		case <-ctx.Done():
			return errStore(errors.New("the schema store has not finished loading"))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// --- schema preparation ---------------------------------------------------------------------------------

// Prepared is a schema parsed and reduced to its identity.
type Prepared struct {
	Schema      *avro.Schema
	Text        string // canonical (or normalized) text, as stored
	Fingerprint string
	References  []Reference
}

func validSubject(s string) bool {
	if s == "" || len(s) > 4096 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Prepare parses a schema with its references and computes its identity: Confluent's MD5 over the
// canonical text (or the normalized text), the schema type and the references.
func (r *Registry) Prepare(text, schemaType string, refs []Reference, normalize, validateDefaults bool) (*Prepared, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errUnprocessable("schema may not be empty")
	}
	if len(text) > r.cfg.MaxSchemaBytes {
		return nil, errSchemaTooLarge(len(text), r.cfg.MaxSchemaBytes)
	}
	if schemaType != "" && !strings.EqualFold(schemaType, "AVRO") {
		return nil, errInvalidSchema(fmt.Sprintf("type %s: minipipe's registry holds AVRO schemas only", schemaType))
	}
	for _, ref := range refs {
		if ref.Name == "" || !validSubject(ref.Subject) || ref.Version == 0 || ref.Version < -1 {
			return nil, errInvalidSchema(fmt.Sprintf("(invalid reference %+v)", ref))
		}
	}
	// Pin "latest" references to their current version.
	pinned := make([]Reference, len(refs))
	for i, ref := range refs {
		pinned[i] = ref
		if ref.Version == -1 {
			v, err := r.store.Version(ref.Subject, -1, false)
			if err != nil {
				return nil, err
			}
			if v == nil {
				return nil, errInvalidSchema(fmt.Sprintf("(reference %s: subject %s has no versions)", ref.Name, ref.Subject))
			}
			pinned[i].Version = v.Version
		}
	}
	named, err := r.store.resolveReferences(pinned, 0)
	if err != nil {
		return nil, err
	}
	sch, err := avro.ParseWith(text, avro.ParseOptions{ValidateDefaults: validateDefaults, Named: named})
	if err != nil {
		return nil, errInvalidSchema(fmt.Sprintf("%s, details: %v", truncate(text, 500), err))
	}
	if _, err := avro.NewCodec(sch); err != nil {
		return nil, errInvalidSchema(fmt.Sprintf("%s, details: %v", truncate(text, 500), err))
	}
	canon := sch.Canonical()
	if normalize {
		canon = sch.Normalized()
	}
	h := md5.New()
	h.Write([]byte("AVRO\x00"))
	h.Write([]byte(canon))
	for _, ref := range pinned {
		fmt.Fprintf(h, "\x00%s\x00%s\x00%d", ref.Name, ref.Subject, ref.Version)
	}
	return &Prepared{Schema: sch, Text: canon, Fingerprint: hex.EncodeToString(h.Sum(nil)), References: pinned}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// --- writes: sent to the owner ----------------------------------------------------------------------------

// write sends a command to the registry's owner and waits for its reply.
func (r *Registry) write(ctx context.Context, cmd Command) (*Reply, error) {
	if err := r.waitReady(ctx); err != nil {
		return nil, err
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	cmd.Request = hex.EncodeToString(id)
	cmd.Deadline = time.Now().Add(r.cfg.Timeout)
	cmd.Principal = auth.Principal(ctx)
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, errStore(err)
	}
	ch := r.store.expect(cmd.Request)
	defer r.store.forget(cmd.Request)
	timer := time.NewTimer(time.Until(cmd.Deadline))
	defer timer.Stop()
	// Sending waits for Kafka: with Kafka down it must not outlast the request's deadline (the owner skips
	// a command that arrives after its deadline).
	sent := make(chan error, 1)
	go func() { sent <- r.emitter.EmitSync(cmd.Subject, body) }()
	select {
	case err := <-sent:
		if err != nil {
			return nil, errStore(fmt.Errorf("sending the request to the registry's owner: %w", err))
		}
	case <-timer.C:
		return nil, errTimeout("Kafka did not take the request in time (--registry-timeout)")
	case <-ctx.Done():
		return nil, errTimeout(ctx.Err().Error())
	}
	select {
	case rep := <-ch:
		return &rep, nil
	case <-timer.C:
		return nil, errTimeout("no reply from the instance that owns registry writes")
	case <-ctx.Done():
		return nil, errTimeout(ctx.Err().Error())
	}
}

// decodeReply turns a reply into the value it carries or the error it reports.
func decodeReply(rep *Reply, out any) error {
	if rep.Status != 200 {
		var e Error
		if err := json.Unmarshal(rep.Body, &e); err != nil {
			return errStore(fmt.Errorf("malformed reply: %w", err))
		}
		e.Status = rep.Status
		return &e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rep.Body, out); err != nil {
		return errStore(fmt.Errorf("malformed reply: %w", err))
	}
	return nil
}

// RegisterRequest is the body of POST /subjects/{subject}/versions.
type RegisterRequest struct {
	Schema     string      `json:"schema"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	ID         int         `json:"id,omitempty"`
	Version    int         `json:"version,omitempty"`
}

// Registered is the outcome of a registration.
type Registered struct {
	ID      int `json:"id"`
	Version int `json:"version,omitempty"`
}

// Register registers a schema under a subject, or returns the id it already has there.
func (r *Registry) Register(ctx context.Context, subject string, req RegisterRequest, normalize bool) (Registered, error) {
	if !validSubject(subject) {
		return Registered{}, errInvalidSubject(subject)
	}
	if err := r.waitReady(ctx); err != nil {
		return Registered{}, err
	}
	_, cfgNormalize, err := r.store.EffectiveLevel(subject)
	if err != nil {
		return Registered{}, err
	}
	normalize = normalize || cfgNormalize
	p, err := r.Prepare(req.Schema, req.SchemaType, req.References, normalize, true)
	if err != nil {
		return Registered{}, err
	}
	// Already registered under this subject: answer locally, as Confluent does, without a compatibility check.
	if req.ID == 0 {
		if v, err := r.lookupPrepared(subject, p, false); err != nil {
			return Registered{}, err
		} else if v != nil {
			return Registered{ID: v.ID, Version: v.Version}, nil
		}
	}
	rep, err := r.write(ctx, Command{Op: opRegister, Subject: subject, Schema: req.Schema, SchemaType: req.SchemaType,
		References: p.References, Normalize: normalize, ID: req.ID, Version: req.Version})
	if err != nil {
		return Registered{}, err
	}
	var out Registered
	return out, decodeReply(rep, &out)
}

// lookupPrepared finds the version of subject holding this schema.
func (r *Registry) lookupPrepared(subject string, p *Prepared, deleted bool) (*VersionRecord, error) {
	id, err := r.store.IDByFingerprint(p.Fingerprint)
	if err != nil || id == 0 {
		return nil, err
	}
	vs, err := r.store.Versions(subject)
	if err != nil {
		return nil, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].ID == id && (deleted || !vs[i].Deleted) {
			return &vs[i], nil
		}
	}
	return nil, nil
}

// DeleteSubject soft- or hard-deletes a subject and returns the versions deleted.
func (r *Registry) DeleteSubject(ctx context.Context, subject string, permanent bool) ([]int, error) {
	rep, err := r.write(ctx, Command{Op: opDeleteSubject, Subject: subject, Permanent: permanent})
	if err != nil {
		return nil, err
	}
	var out []int
	return out, decodeReply(rep, &out)
}

// DeleteVersion soft- or hard-deletes one version (version -1: the latest) and returns its number.
func (r *Registry) DeleteVersion(ctx context.Context, subject string, version int, permanent bool) (int, error) {
	rep, err := r.write(ctx, Command{Op: opDeleteVersion, Subject: subject, Version: version, Latest: version == -1, Permanent: permanent})
	if err != nil {
		return 0, err
	}
	var out int
	return out, decodeReply(rep, &out)
}

// SetConfig sets the global ("" subject) or a subject's compatibility configuration.
func (r *Registry) SetConfig(ctx context.Context, subject string, c ConfigRecord) error {
	rep, err := r.write(ctx, Command{Op: opSetConfig, Subject: subject, Config: &c})
	if err != nil {
		return err
	}
	return decodeReply(rep, nil)
}

// DeleteConfig removes a subject's (or the global) configuration and returns what it was.
func (r *Registry) DeleteConfig(ctx context.Context, subject string) (ConfigRecord, error) {
	rep, err := r.write(ctx, Command{Op: opDeleteConfig, Subject: subject})
	if err != nil {
		return ConfigRecord{}, err
	}
	var out ConfigRecord
	return out, decodeReply(rep, &out)
}

// SetMode sets the global or a subject's mode.
func (r *Registry) SetMode(ctx context.Context, subject, mode string, force bool) error {
	rep, err := r.write(ctx, Command{Op: opSetMode, Subject: subject, Mode: mode, Force: force})
	if err != nil {
		return err
	}
	return decodeReply(rep, nil)
}

// DeleteMode removes a subject's mode and returns what it was.
func (r *Registry) DeleteMode(ctx context.Context, subject string) (string, error) {
	rep, err := r.write(ctx, Command{Op: opDeleteMode, Subject: subject})
	if err != nil {
		return "", err
	}
	var out ModeRecord
	return out.Mode, decodeReply(rep, &out)
}

// Sync waits until the local store has applied everything in the registry topic.
func (r *Registry) Sync(ctx context.Context) error {
	if err := r.waitReady(ctx); err != nil {
		return err
	}
	return r.catchUp(ctx)
}

// IsNotFound reports whether err says a schema (or subject or version) does not exist.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == 404
}

// --- reads used by the REST edge ----------------------------------------------------------------------------

// Codec returns the codec of a schema id.
func (r *Registry) Codec(ctx context.Context, id int) (*avro.Codec, error) {
	if err := r.waitReady(ctx); err != nil {
		return nil, err
	}
	_, c, err := r.store.Parsed(id)
	return c, err
}
