// Package validate checks a source record before it becomes a row: Confluent's framing, a schema id the
// registry knows, a schema the table can take, and a datum that really decodes. A record that fails is
// rejected with a reason (it goes to the topic's dead-letter topic); a registry that cannot answer is a
// transient error, never a rejection.
package validate

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/sinks/parquet"
)

// Schemas is what validation needs of the schema registry.
type Schemas interface {
	// Schema returns the parsed schema of an id; ErrUnknownSchema when the registry has no such id.
	Schema(id int) (*avro.Schema, error)
	// SubjectSchemaIDs lists the ids of a subject's live versions, oldest first.
	SubjectSchemaIDs(subject string) ([]int, error)
	// Sync waits until the local registry store has caught up with the registry topic.
	Sync() error
}

// ErrUnknownSchema is a schema id the registry does not know.
var ErrUnknownSchema = errors.New("unknown schema id")

// Rejection is a record that cannot become a row; Code is a short machine-readable reason.
type Rejection struct {
	Code   string
	Reason string
}

func (r *Rejection) Error() string { return r.Code + ": " + r.Reason }

// Rejection codes.
const (
	CodeNotAvro       = "not-confluent-avro"
	CodeUnknownSchema = "unknown-schema-id"
	CodeRejected      = "schema-rejected"
	CodeCorrupt       = "corrupt-datum"
	CodeTimestamp     = "bad-timestamp-field"
	CodeField         = "bad-partition-field"
	CodeTooManyItems  = "too-many-items"
	CodeOutOfRange    = "value-out-of-range"
)

// Validator validates the records of one table's topic.
type Validator struct {
	schemas Schemas
	subject string
	drop    map[string]bool

	mu       sync.Mutex
	verdicts map[int]*verdict
}

type verdict struct {
	schema *avro.Schema
	dec    *parquet.Decoder // the writer's own reading of the schema's records: what it accepts is writable
	rej    *Rejection
	until  time.Time // an unknown schema id is looked up again after this (it may be registered later)
}

// unknownFor is how long a schema id found missing from the registry is taken as missing without asking
// again: records that name it go to the dead-letter topic, and once it is registered (then re-driven) they
// are accepted. Ids are never removed, so every other verdict is kept for good.
const unknownFor = 2 * time.Second

var now = time.Now // tests move it

// New makes a validator for a table fed by subject's schemas; drop names partition fields, which are not
// data columns.
func New(schemas Schemas, subject string, drop map[string]bool) *Validator {
	return &Validator{schemas: schemas, subject: subject, drop: drop, verdicts: map[int]*verdict{}}
}

// Check validates a record value. It returns the schema id, the schema and the Avro payload, a
// *Rejection for a bad record, or another error when the registry cannot answer now (retry later).
func (v *Validator) Check(value []byte) (int, *avro.Schema, []byte, error) {
	id, payload, err := avro.ParseWire(value)
	if err != nil {
		return 0, nil, nil, &Rejection{Code: CodeNotAvro, Reason: "not in Confluent's Avro wire format (magic byte 0, 4-byte schema id): " + err.Error()}
	}
	vd, err := v.verdict(id)
	if err != nil {
		return 0, nil, nil, err
	}
	if vd.rej != nil {
		return 0, nil, nil, vd.rej
	}
	// The Parquet writer's own check: a record accepted here is one the commit stage can write.
	if err := vd.dec.Check(payload); err != nil {
		return 0, nil, nil, &Rejection{Code: CodeFor(err), Reason: fmt.Sprintf("the datum cannot be a row of schema %d: %v", id, err)}
	}
	return id, vd.schema, payload, nil
}

func (v *Validator) verdict(id int) (*verdict, error) {
	v.mu.Lock()
	vd, ok := v.verdicts[id]
	v.mu.Unlock()
	if ok && (vd.until.IsZero() || now().Before(vd.until)) {
		return vd, nil
	}
	stale := vd
	s, err := v.schemas.Schema(id)
	if errors.Is(err, ErrUnknownSchema) {
		// It may have been registered a moment ago through another instance: catch up once.
		if serr := v.schemas.Sync(); serr != nil {
			if stale != nil { // looked up again (it was unknown): while the registry cannot say, it stays unknown
				again := *stale
				again.until = now().Add(unknownFor)
				v.mu.Lock()
				v.verdicts[id] = &again
				v.mu.Unlock()
				return &again, nil
			}
			return nil, serr
		}
		s, err = v.schemas.Schema(id)
	}
	switch {
	case errors.Is(err, ErrUnknownSchema):
		vd = &verdict{rej: &Rejection{Code: CodeUnknownSchema, Reason: fmt.Sprintf("schema id %d is not in the registry", id)}, until: now().Add(unknownFor)}
	case err != nil:
		return nil, err
	default:
		dec, rej, err := v.accept(id, s)
		switch {
		case err != nil:
			return nil, err
		case rej != nil:
			vd = &verdict{rej: rej}
		default:
			vd = &verdict{schema: s, dec: dec}
		}
	}
	v.mu.Lock()
	v.verdicts[id] = vd
	v.mu.Unlock()
	return vd, nil
}

// accept decides whether the table can take rows of schema s: it must be a record that maps to Parquet
// columns, and every column it shares with the table's registered versions must be of a type the two can
// share (the same, or a widening such as int to long). It returns the decoder that checks its records.
func (v *Validator) accept(id int, s *avro.Schema) (*parquet.Decoder, *Rejection, error) {
	cols, err := parquet.ArrowSchema(s, v.drop)
	if err != nil {
		return nil, &Rejection{Code: CodeRejected, Reason: fmt.Sprintf("schema %d cannot be a table row: %v", id, err)}, nil
	}
	dec, err := parquet.NewDecoder(s, s, cols)
	if err != nil {
		return nil, &Rejection{Code: CodeRejected, Reason: fmt.Sprintf("schema %d cannot be a table row: %v", id, err)}, nil
	}
	ids, err := v.schemas.SubjectSchemaIDs(v.subject)
	if err != nil {
		return nil, nil, err
	}
	for _, other := range ids {
		if other == id {
			return dec, nil, nil // a version of the table's own subject
		}
	}
	for _, other := range ids {
		os, err := v.schemas.Schema(other)
		if err != nil {
			if errors.Is(err, ErrUnknownSchema) {
				continue
			}
			return nil, nil, err
		}
		ocols, err := parquet.ArrowSchema(os, v.drop)
		if err != nil {
			continue
		}
		if col, ok := conflict(cols, ocols); !ok {
			return nil, &Rejection{Code: CodeRejected, Reason: fmt.Sprintf("column %s of schema %d conflicts with schema %d of subject %s", col, id, other, v.subject)}, nil
		}
	}
	return dec, nil, nil
}

// CodeFor is the rejection code of a record the writer cannot take.
func CodeFor(err error) string {
	switch {
	case errors.Is(err, avro.ErrTooManyItems):
		return CodeTooManyItems
	case errors.Is(err, avro.ErrDecimalRange):
		return CodeOutOfRange
	}
	return CodeCorrupt
}

func conflict(a, b *arrow.Schema) (string, bool) {
	for _, f := range a.Fields() {
		idx := b.FieldIndices(f.Name)
		if len(idx) == 0 {
			continue
		}
		if !parquet.Mergeable(f.Type, b.Field(idx[0]).Type) {
			return f.Name, false
		}
	}
	return "", true
}

// NewFile reports whether a row of schema id must start a new file after rows of schema prev: a newer
// schema always does, an older one only when the file's schema cannot read it (schema resolution). When a
// schema is not at hand it does (a boundary too many costs a file, not a row).
func (v *Validator) NewFile(prev, id int) bool {
	if id == prev {
		return false
	}
	if id > prev {
		return true
	}
	a, err := v.verdict(prev)
	if err != nil || a.schema == nil {
		return true
	}
	b, err := v.verdict(id)
	if err != nil || b.schema == nil {
		return true
	}
	return !avro.Compatible(a.schema, b.schema)
}
