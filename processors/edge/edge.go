// Package edge is minipipe's Confluent-compatible REST Proxy: the v1 and v2 produce API for the binary,
// json and avro embedded formats, and the topic metadata endpoints. Every record of a request is checked
// and encoded before any is sent, Avro records go out in Confluent's wire format with ids from minipipe's
// registry, and errors carry the classic REST Proxy codes.
package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/httpapi"
	"github.com/minipipe/minipipe/internal/kafka"
	"github.com/minipipe/minipipe/processors/registry"
)

// Config configures the REST edge.
type Config struct {
	// AutoCreateTopics creates a missing topic on its first produce (default true); off, a missing topic is
	// a 404/40401.
	AutoCreateTopics bool
	// TopicPartitions is the partition count of auto-created topics (default 4).
	TopicPartitions int
	// ReplicationFactor of auto-created topics (resolved by the caller).
	ReplicationFactor int
	// MaxRequestBytes bounds a request body (default 8 MiB); larger requests get a 413.
	MaxRequestBytes int64
	// ProduceTimeout bounds a produce request from its body to its answer (default 30s): records Kafka has
	// not taken by then fail with the retriable 50003, and the request is answered.
	ProduceTimeout time.Duration
	// MaxInflightBytes is the budget of request bytes being worked on at once (default 64 MiB); a request
	// that would exceed it is shed with 429 and Retry-After, so that a slow or absent Kafka cannot make the
	// edge hold an unbounded backlog.
	MaxInflightBytes int64
	// Internal reports whether a topic is one of minipipe's own, which clients may not produce to.
	Internal func(topic string) bool
}

func (c *Config) defaults() {
	if c.TopicPartitions <= 0 {
		c.TopicPartitions = 4
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 8 << 20
	}
	if c.ProduceTimeout <= 0 {
		c.ProduceTimeout = 30 * time.Second
	}
	if c.MaxInflightBytes <= 0 {
		c.MaxInflightBytes = 64 << 20
	}
}

// Edge serves the REST Proxy API.
type Edge struct {
	cfg      Config
	reg      *registry.Registry
	log      *slog.Logger
	client   sarama.Client
	admin    sarama.ClusterAdmin
	producer *kgo.Client
	creating singleflight.Group
	schemas  schemaCache
	metrics  *Metrics
	inflight *semaphore.Weighted // request bytes being worked on (MaxInflightBytes)
}

// New connects the edge to Kafka.
func New(cfg Config, kcfg kafka.Config, reg *registry.Registry, metrics *Metrics, log *slog.Logger) (*Edge, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	sc := kcfg.Sarama()
	client, err := sarama.NewClient(kcfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("edge: kafka client: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("edge: kafka admin: %w", err)
	}
	producer, err := kcfg.NewProducer("minipipe-rest")
	if err != nil {
		admin.Close()
		return nil, fmt.Errorf("edge: %w", err)
	}
	e := &Edge{cfg: cfg, reg: reg, log: log.With("component", "rest"), client: client, admin: admin, producer: producer, metrics: metrics,
		inflight: semaphore.NewWeighted(cfg.MaxInflightBytes)}
	e.schemas.init()
	return e, nil
}

// Close flushes and closes the producer.
func (e *Edge) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.producer.Flush(ctx)
	e.producer.Close()
	if aerr := e.admin.Close(); err == nil {
		err = aerr
	}
	return err
}

// --- producing ------------------------------------------------------------------------------------------

// kafkaErrorCode maps a producer error to the REST Proxy's per-record codes: 40101 authentication, 40301
// authorization, 50003 retriable, 50002 anything else.
func kafkaErrorCode(err error) int {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.SaslAuthenticationFailed:
			return 40101
		case kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed:
			return 40301
		}
		if ke.Retriable {
			return 50003
		}
		return 50002
	}
	if errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordRetries) {
		return 50003
	}
	// A broker that cannot be reached is retriable, as the Java client's NetworkException is.
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return 50003
	}
	return 50002
}

type result struct {
	partition int32
	offset    int64
	errCode   int
	err       string
}

// send hands the encoded records to the producer and waits for every acknowledgement. A record the broker
// refuses gets its error in its own result, as Confluent reports per-record Kafka errors in-band.
func (e *Edge) send(ctx context.Context, recs []*kgo.Record) ([]result, error) {
	results := make([]result, len(recs))
	var pending sync.WaitGroup
	pending.Add(len(recs))
	// The records outlive a client that goes away (they are sent, or fail, whatever it does), but not the
	// request's deadline: records Kafka has not taken by then fail, and the answer says which.
	pctx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithDeadline(pctx, d)
		defer cancel()
	}
	for i, r := range recs {
		i := i
		e.producer.Produce(pctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				results[i] = result{partition: -1, offset: -1, errCode: kafkaErrorCode(err), err: err.Error()}
				e.log.Warn("record not produced", "topic", r.Topic, "error", err)
			} else {
				results[i] = result{partition: r.Partition, offset: r.Offset}
			}
			pending.Done()
		})
	}
	done := make(chan struct{})
	go func() { pending.Wait(); close(done) }()
	select {
	case <-done:
		return results, nil
	case <-ctx.Done():
		return nil, errProduceTimeout
	}
}

var errProduceTimeout = &httpapi.Error{Status: 500, Code: 50003, Message: "Timed out waiting for the Kafka brokers to acknowledge the records (--produce-timeout): retry later"}

// --- topics -----------------------------------------------------------------------------------------------

// ValidTopic reports whether a name is a legal Kafka topic name.
func ValidTopic(t string) bool {
	if t == "" || t == "." || t == ".." || len(t) > 249 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

var errTopicNotFound = &httpapi.Error{Status: 404, Code: 40401, Message: "Topic not found."}

func errPartitionNotFound() *httpapi.Error {
	return &httpapi.Error{Status: 404, Code: 40402, Message: "Partition not found."}
}

// partitions returns a topic's partition count, creating the topic when allowed.
func (e *Edge) partitions(topic string, create bool) (int32, error) {
	ps, err := e.client.Partitions(topic)
	if err == nil && len(ps) > 0 {
		return int32(len(ps)), nil
	}
	if err != nil && !kafka.IsUnknownTopic(err) {
		return 0, &httpapi.Error{Status: 500, Code: 50002, Message: "Kafka error: " + err.Error()}
	}
	if !create {
		return 0, errTopicNotFound
	}
	_, err, _ = e.creating.Do(topic, func() (any, error) { return nil, e.createTopic(topic) })
	if err != nil {
		return 0, err
	}
	ps, err = e.client.Partitions(topic)
	if err != nil || len(ps) == 0 {
		return 0, &httpapi.Error{Status: 500, Code: 50003, Message: fmt.Sprintf("Topic %s was created but its metadata is not available yet", topic)}
	}
	return int32(len(ps)), nil
}

func (e *Edge) createTopic(topic string) error {
	err := e.admin.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions:     int32(e.cfg.TopicPartitions),
		ReplicationFactor: int16(e.cfg.ReplicationFactor),
	}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		var te *sarama.TopicError
		if !(errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists) {
			return &httpapi.Error{Status: 500, Code: 50002, Message: fmt.Sprintf("Kafka error: creating topic %s: %v", topic, err)}
		}
	}
	e.log.Info("created topic", "topic", topic, "partitions", e.cfg.TopicPartitions)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := e.client.RefreshMetadata(topic); err == nil {
			if ps, err := e.client.Partitions(topic); err == nil && len(ps) > 0 {
				leadersOK := true
				for _, p := range ps {
					if _, err := e.client.Leader(topic, p); err != nil {
						leadersOK = false
					}
				}
				if leadersOK {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &httpapi.Error{Status: 500, Code: 50003, Message: fmt.Sprintf("Topic %s was created but has no leaders yet", topic)}
}

// --- schemas ----------------------------------------------------------------------------------------------

// schemaCache remembers the id an inline schema got under a subject, as Confluent's REST Proxy does, so
// that repeated requests with the same schema text cost a map lookup.
type schemaCache struct {
	mu sync.RWMutex
	m  map[[2]string]int
}

func (c *schemaCache) init() { c.m = map[[2]string]int{} }

func (c *schemaCache) get(subject, text string) (int, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.m[[2]string{subject, text}]
	return id, ok
}

func (c *schemaCache) put(subject, text string, id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 10000 {
		c.m = map[[2]string]int{}
	}
	c.m[[2]string{subject, text}] = id
}

func errSchemaRegistration(detail string) *httpapi.Error {
	msg := "Schema registration or lookup failed"
	if detail != "" {
		msg += ": " + detail
	}
	return &httpapi.Error{Status: 408, Code: 40801, Message: msg}
}

// resolveSchema turns key_schema/key_schema_id (or the value pair) into an id and codec. The id wins
// when both are given.
func (e *Edge) resolveSchema(ctx context.Context, subject string, text *string, id *int) (int, *avro.Codec, error) {
	if id != nil {
		c, err := e.reg.Codec(ctx, *id)
		if err != nil {
			return 0, nil, errSchemaRegistration(registry.AsError(err).Message)
		}
		return *id, c, nil
	}
	if cached, ok := e.schemas.get(subject, *text); ok {
		c, err := e.reg.Codec(ctx, cached)
		if err == nil {
			return cached, c, nil
		}
	}
	if _, err := avro.ParseWith(*text, avro.ParseOptions{}); err != nil {
		return 0, nil, &httpapi.Error{Status: 422, Code: 42205, Message: "Invalid schema: " + *text + " (" + err.Error() + ")"}
	}
	reg, err := e.reg.Register(ctx, subject, registry.RegisterRequest{Schema: *text}, false)
	if err != nil {
		re := registry.AsError(err)
		if re.Code == 42201 {
			return 0, nil, &httpapi.Error{Status: 422, Code: 42205, Message: "Invalid schema: " + re.Message}
		}
		return 0, nil, errSchemaRegistration(re.Message)
	}
	c, err := e.reg.Codec(ctx, reg.ID)
	if err != nil {
		return 0, nil, errSchemaRegistration(registry.AsError(err).Message)
	}
	e.schemas.put(subject, *text, reg.ID)
	return reg.ID, c, nil
}

// --- the HTTP API -------------------------------------------------------------------------------------------

const (
	contentTypeV1 = "application/vnd.kafka.v1+json"
	contentTypeV2 = "application/vnd.kafka.v2+json"
)

var (
	offersV1  = []string{contentTypeV1, "application/vnd.kafka+json", "application/json"}
	offersV2  = []string{contentTypeV2, "application/vnd.kafka+json", "application/json"}
	offersGet = []string{contentTypeV2, contentTypeV1, "application/vnd.kafka+json", "application/json"}
)

// Handler serves the REST Proxy API.
func (e *Edge) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /topics/{topic}", e.produce)
	mux.HandleFunc("POST /topics/{topic}/partitions/{partition}", e.produce)
	mux.HandleFunc("GET /topics", e.listTopics)
	mux.HandleFunc("GET /topics/{topic}", e.getTopic)
	mux.HandleFunc("GET /topics/{topic}/partitions", e.getPartitions)
	mux.HandleFunc("GET /topics/{topic}/partitions/{partition}", e.getPartitions)
	mux.HandleFunc("GET /brokers", e.listBrokers)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, 200, contentTypeV2, struct{}{})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			r2 := r.Clone(r.Context())
			r2.Method = m
			if _, p := mux.Handler(r2); m != r.Method && p != "/" && p != "" {
				httpapi.WriteError(w, contentTypeV2, httpapi.ErrMethodNotAllowed)
				return
			}
		}
		httpapi.WriteError(w, contentTypeV2, httpapi.ErrNotFound)
	})
	return recoverer(e.log, mux)
}

// recoverer turns a panic into a 500 in the error envelope: one bad request never takes the server down.
func recoverer(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic serving request", "path", r.URL.Path, "panic", p)
				httpapi.WriteError(w, contentTypeV2, httpapi.Errorf(500, "Internal Server Error"))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

func (e *Edge) produce(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	mt, ok := ParseContentType(r.Header.Get("Content-Type"))
	if !ok {
		httpapi.WriteError(w, contentTypeV2, httpapi.ErrUnsupportedMediaType)
		e.metrics.observe("produce", 415, 0, start)
		return
	}
	offers := offersV2
	if mt.Version == 1 {
		offers = offersV1
	}
	ct, ok := httpapi.Negotiate(r.Header.Get("Accept"), offers)
	if !ok {
		httpapi.WriteError(w, offers[0], httpapi.ErrNotAcceptable)
		e.metrics.observe("produce", 406, 0, start)
		return
	}
	// The in-flight budget: a request is taken only when its bytes fit; otherwise it is shed at once.
	size := r.ContentLength
	if size <= 0 || size > e.cfg.MaxRequestBytes {
		size = e.cfg.MaxRequestBytes // no length given: it may be as large as any
	}
	if !e.inflight.TryAcquire(size) {
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, ct, &httpapi.Error{Status: 429, Code: 42901,
			Message: "Too many requests: the REST proxy is working on as many bytes as --max-inflight-bytes allows (Kafka is slow or unreachable); retry later"})
		e.metrics.observe("produce", 429, 0, start)
		e.metrics.shed.Inc()
		return
	}
	// The whole request is bounded by --produce-timeout: Kafka slow or away, it is answered in time with
	// the retriable 50003, and its records that Kafka has not taken fail. The body is read here (the
	// server's read timeout bounds that); the rest runs beside the timer.
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.ProduceTimeout)
	defer cancel()
	idem, ierr := idempotencyKey(r.Header.Values("Idempotency-Key"))
	raw, rerr := httpapi.ReadBody(r, e.cfg.MaxRequestBytes)
	if rerr == nil && ierr != nil {
		rerr = ierr
	}
	if rerr != nil {
		e.inflight.Release(size)
		httpapi.WriteError(w, ct, rerr)
		e.metrics.observe("produce", rerr.Status, 0, start)
		return
	}
	topic, partition := r.PathValue("topic"), r.PathValue("partition")
	type outcome struct {
		body []byte
		n    int
		herr *httpapi.Error
	}
	done := make(chan outcome, 1)
	go func() {
		defer e.inflight.Release(size)
		body, n, herr := e.produceBody(ctx, topic, partition, raw, mt, idem)
		done <- outcome{body, n, herr}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		o.herr = errProduceTimeout
		if r.Context().Err() == nil {
			e.log.Warn("a produce request timed out", "topic", topic, "timeout", e.cfg.ProduceTimeout)
		}
	}
	if o.herr != nil {
		if o.herr.Code == 50003 {
			w.Header().Set("Retry-After", "1")
		}
		httpapi.WriteError(w, ct, o.herr)
		e.metrics.observe("produce", o.herr.Status, 0, start)
		return
	}
	httpapi.WriteRaw(w, 200, ct, o.body)
	e.metrics.observe("produce", 200, o.n, start)
}

// idempotencyKey reads the Idempotency-Key header (the IETF HTTP API draft's: a string, quoted as a
// structured-field string or bare): at most one, of 1 to 255 printable ASCII characters. "" when absent.
func idempotencyKey(vals []string) (string, *httpapi.Error) {
	if len(vals) == 0 {
		return "", nil
	}
	bad := func(why string) (string, *httpapi.Error) {
		return "", &httpapi.Error{Status: 400, Code: 400, Message: "Invalid Idempotency-Key header: " + why}
	}
	if len(vals) > 1 {
		return bad("given more than once")
	}
	k := strings.TrimSpace(vals[0])
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = strings.ReplaceAll(strings.ReplaceAll(k[1:len(k)-1], `\"`, `"`), `\\`, `\`)
	}
	if k == "" || len(k) > kafka.MaxIdempotencyKey {
		return bad(fmt.Sprintf("use 1 to %d characters", kafka.MaxIdempotencyKey))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return bad("use printable ASCII characters")
		}
	}
	return k, nil
}

func asHTTP(err error) *httpapi.Error {
	var he *httpapi.Error
	if errors.As(err, &he) {
		return he
	}
	return httpapi.Errorf(500, "Internal Server Error: %v", err)
}

// produceBody validates, encodes and sends a produce request and renders the response body.
func (e *Edge) produceBody(ctx context.Context, topic, partition string, raw []byte, mt MediaType, idem string) ([]byte, int, *httpapi.Error) {
	if !ValidTopic(topic) {
		return nil, 0, httpapi.Errorf(422, "Invalid topic name %q: use up to 249 characters from [a-zA-Z0-9._-]", truncate(topic))
	}
	if e.cfg.Internal != nil && e.cfg.Internal(topic) {
		return nil, 0, &httpapi.Error{Status: 403, Code: 40301, Message: fmt.Sprintf("Not authorized to produce to internal topic %s", topic)}
	}
	fixedPartition := int32(-1)
	if ps := partition; ps != "" {
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 {
			return nil, 0, errPartitionNotFound()
		}
		fixedPartition = int32(p)
	}
	req, herr := ParseProduceRequest(raw)
	if herr != nil {
		return nil, 0, herr
	}

	// Encode every record before sending any.
	var keyID, valueID *int
	var keyCodec, valueCodec *avro.Codec
	if mt.Format == FormatAvro {
		hasKeys, hasValues := false, false
		for _, rec := range req.Records {
			hasKeys = hasKeys || !isNull(rec.Key)
			hasValues = hasValues || !isNull(rec.Value)
		}
		if hasKeys && req.KeySchema == nil && req.KeySchemaID == nil {
			return nil, 0, &httpapi.Error{Status: 422, Code: 42201, Message: "Request includes keys but does not include key schema"}
		}
		if hasValues && req.ValueSchema == nil && req.ValueSchemaID == nil {
			return nil, 0, &httpapi.Error{Status: 422, Code: 42202, Message: "Request includes values but does not include value schema"}
		}
		if req.KeySchema != nil || req.KeySchemaID != nil {
			id, c, err := e.resolveSchema(ctx, topic+"-key", req.KeySchema, req.KeySchemaID)
			if err != nil {
				return nil, 0, asHTTP(err)
			}
			keyID, keyCodec = &id, c
		}
		if req.ValueSchema != nil || req.ValueSchemaID != nil {
			id, c, err := e.resolveSchema(ctx, topic+"-value", req.ValueSchema, req.ValueSchemaID)
			if err != nil {
				return nil, 0, asHTTP(err)
			}
			valueID, valueCodec = &id, c
		}
	}
	msgs := make([]*kgo.Record, len(req.Records))
	for i, rec := range req.Records {
		key, err := encodeData(mt.Format, rec.Key, keyID, keyCodec)
		if err != nil {
			return nil, 0, conversionError(mt.Format, "key", i, err)
		}
		value, err := encodeData(mt.Format, rec.Value, valueID, valueCodec)
		if err != nil {
			return nil, 0, conversionError(mt.Format, "value", i, err)
		}
		m := &kgo.Record{Topic: topic, Partition: -1, Key: key, Value: value}
		if fixedPartition >= 0 {
			m.Partition = fixedPartition
		} else if rec.Partition != nil {
			m.Partition = *rec.Partition
		}
		if idem != "" {
			m.Headers = []kgo.RecordHeader{{Key: kafka.HeaderIdempotencyKey, Value: []byte(idem)},
				{Key: kafka.HeaderIdempotencyIndex, Value: strconv.AppendInt(nil, int64(i), 10)}}
		}
		msgs[i] = m
	}

	n, err := e.partitions(topic, e.cfg.AutoCreateTopics)
	if err != nil {
		return nil, 0, asHTTP(err)
	}
	for _, m := range msgs {
		if m.Partition >= n {
			return nil, 0, errPartitionNotFound()
		}
		// A keyless record of an idempotent request is placed by the key: every retry reaches the
		// partition whose ingest stage remembers it.
		if idem != "" && m.Partition < 0 && m.Key == nil {
			m.Partition = kafka.KeyPartition([]byte(idem), n)
		}
	}
	results, err := e.send(ctx, msgs)
	if err != nil {
		return nil, 0, asHTTP(err)
	}
	return renderResponse(results, keyID, valueID), len(msgs), nil
}

func encodeData(f Format, raw []byte, id *int, c *avro.Codec) ([]byte, error) {
	switch f {
	case FormatBinary:
		return decodeBinary(raw)
	case FormatJSON:
		return decodeJSONData(raw)
	default:
		if isNull(raw) {
			return nil, nil
		}
		out := avro.AppendWireHeader(make([]byte, 0, avro.WireHeaderSize+len(raw)), *id)
		out, err := c.AppendBinaryFromJSON(out, raw)
		if err != nil {
			return nil, err
		}
		// The bounds the pipeline holds every record to (items that take no bytes, the item cap): what the
		// edge accepts, the tables take.
		if err := avro.Validate(c.Schema, out[avro.WireHeaderSize:]); err != nil {
			return nil, err
		}
		return out, nil
	}
}

func conversionError(f Format, what string, i int, err error) *httpapi.Error {
	switch f {
	case FormatAvro:
		return &httpapi.Error{Status: 422, Code: 42203, Message: fmt.Sprintf("Conversion of JSON to Avro failed: records[%d].%s: %v", i, what, err)}
	case FormatBinary:
		return &httpapi.Error{Status: 422, Code: 42203, Message: fmt.Sprintf("Conversion of JSON to Object failed: records[%d].%s: %v", i, what, err)}
	default:
		return &httpapi.Error{Status: 422, Code: 42203, Message: fmt.Sprintf("Conversion of JSON to Object failed: records[%d].%s: %v", i, what, err)}
	}
}

// renderResponse writes the produce response, every offset field present (nulls included), as Confluent's
// Jackson serialisation does.
func renderResponse(results []result, keyID, valueID *int) []byte {
	b := make([]byte, 0, 64+len(results)*72)
	b = append(b, `{"offsets":[`...)
	for i, r := range results {
		if i > 0 {
			b = append(b, ',')
		}
		if r.errCode == 0 {
			b = append(b, `{"partition":`...)
			b = strconv.AppendInt(b, int64(r.partition), 10)
			b = append(b, `,"offset":`...)
			b = strconv.AppendInt(b, r.offset, 10)
			b = append(b, `,"error_code":null,"error":null}`...)
			continue
		}
		b = append(b, `{"partition":null,"offset":null,"error_code":`...)
		b = strconv.AppendInt(b, int64(r.errCode), 10)
		b = append(b, `,"error":`...)
		b = strconv.AppendQuote(b, r.err)
		b = append(b, '}')
	}
	b = append(b, `],"key_schema_id":`...)
	b = appendOptInt(b, keyID)
	b = append(b, `,"value_schema_id":`...)
	b = appendOptInt(b, valueID)
	return append(b, '}')
}

func appendOptInt(b []byte, v *int) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, int64(*v), 10)
}

// --- metadata endpoints -----------------------------------------------------------------------------------

func (e *Edge) negotiateGet(w http.ResponseWriter, r *http.Request) (string, bool) {
	ct, ok := httpapi.Negotiate(r.Header.Get("Accept"), offersGet)
	if !ok {
		httpapi.WriteError(w, contentTypeV2, httpapi.ErrNotAcceptable)
	}
	return ct, ok
}

func (e *Edge) listTopics(w http.ResponseWriter, r *http.Request) {
	ct, ok := e.negotiateGet(w, r)
	if !ok {
		return
	}
	if err := e.client.RefreshMetadata(); err != nil {
		httpapi.WriteError(w, ct, &httpapi.Error{Status: 500, Code: 50002, Message: "Kafka error: " + err.Error()})
		return
	}
	topics, err := e.client.Topics()
	if err != nil {
		httpapi.WriteError(w, ct, &httpapi.Error{Status: 500, Code: 50002, Message: "Kafka error: " + err.Error()})
		return
	}
	if topics == nil {
		topics = []string{}
	}
	httpapi.WriteJSON(w, 200, ct, topics)
}

type replica struct {
	Broker int32 `json:"broker"`
	Leader bool  `json:"leader"`
	InSync bool  `json:"in_sync"`
}

type partitionInfo struct {
	Partition int32     `json:"partition"`
	Leader    int32     `json:"leader"`
	Replicas  []replica `json:"replicas"`
}

func (e *Edge) topicPartitions(topic string) ([]partitionInfo, error) {
	if !ValidTopic(topic) {
		return nil, errTopicNotFound
	}
	if err := e.client.RefreshMetadata(topic); err != nil {
		if kafka.IsUnknownTopic(err) {
			return nil, errTopicNotFound
		}
		return nil, &httpapi.Error{Status: 500, Code: 50002, Message: "Kafka error: " + err.Error()}
	}
	ps, err := e.client.Partitions(topic)
	if err != nil {
		if kafka.IsUnknownTopic(err) {
			return nil, errTopicNotFound
		}
		return nil, &httpapi.Error{Status: 500, Code: 50002, Message: "Kafka error: " + err.Error()}
	}
	out := make([]partitionInfo, 0, len(ps))
	for _, p := range ps {
		info := partitionInfo{Partition: p, Leader: -1, Replicas: []replica{}}
		if l, err := e.client.Leader(topic, p); err == nil {
			info.Leader = l.ID()
		}
		reps, _ := e.client.Replicas(topic, p)
		isr, _ := e.client.InSyncReplicas(topic, p)
		in := map[int32]bool{}
		for _, id := range isr {
			in[id] = true
		}
		for _, id := range reps {
			info.Replicas = append(info.Replicas, replica{Broker: id, Leader: id == info.Leader, InSync: in[id]})
		}
		out = append(out, info)
	}
	return out, nil
}

func (e *Edge) getTopic(w http.ResponseWriter, r *http.Request) {
	ct, ok := e.negotiateGet(w, r)
	if !ok {
		return
	}
	topic := r.PathValue("topic")
	parts, err := e.topicPartitions(topic)
	if err != nil {
		httpapi.WriteError(w, ct, asHTTP(err))
		return
	}
	configs := map[string]string{}
	entries, err := e.admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		e.log.Warn("describe topic configs", "topic", topic, "error", err)
	}
	for _, c := range entries {
		if !c.Sensitive {
			configs[c.Name] = c.Value
		}
	}
	httpapi.WriteJSON(w, 200, ct, struct {
		Name       string            `json:"name"`
		Configs    map[string]string `json:"configs"`
		Partitions []partitionInfo   `json:"partitions"`
	}{topic, configs, parts})
}

func (e *Edge) getPartitions(w http.ResponseWriter, r *http.Request) {
	ct, ok := e.negotiateGet(w, r)
	if !ok {
		return
	}
	parts, err := e.topicPartitions(r.PathValue("topic"))
	if err != nil {
		httpapi.WriteError(w, ct, asHTTP(err))
		return
	}
	ps := r.PathValue("partition")
	if ps == "" {
		httpapi.WriteJSON(w, 200, ct, parts)
		return
	}
	p, err := strconv.ParseInt(ps, 10, 32)
	if err != nil || p < 0 || int(p) >= len(parts) {
		httpapi.WriteError(w, ct, errPartitionNotFound())
		return
	}
	httpapi.WriteJSON(w, 200, ct, parts[p])
}

func (e *Edge) listBrokers(w http.ResponseWriter, r *http.Request) {
	ct, ok := e.negotiateGet(w, r)
	if !ok {
		return
	}
	ids := []int32{}
	for _, b := range e.client.Brokers() {
		ids = append(ids, b.ID())
	}
	httpapi.WriteJSON(w, 200, ct, map[string][]int32{"brokers": ids})
}

// IsInternalTopic reports whether a topic belongs to Kafka or minipipe itself (names starting with "_").
func IsInternalTopic(t string) bool { return strings.HasPrefix(t, "_") }
