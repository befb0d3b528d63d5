package validate

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/minipipe/minipipe/internal/avro"
)

type fakeSchemas struct {
	byID     map[int]*avro.Schema
	subjects map[string][]int
	down     bool
	synced   int
	syncErr  error
}

func (f *fakeSchemas) Schema(id int) (*avro.Schema, error) {
	if f.down {
		return nil, errors.New("registry store not loaded")
	}
	if s, ok := f.byID[id]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%w: %d", ErrUnknownSchema, id)
}
func (f *fakeSchemas) SubjectSchemaIDs(s string) ([]int, error) { return f.subjects[s], nil }
func (f *fakeSchemas) Sync() error                              { f.synced++; return f.syncErr }

func TestCheck(t *testing.T) {
	parse := func(s string) *avro.Schema {
		x, err := avro.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	v1 := `{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"n","type":"int"}]}`
	conflicting := `{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"n","type":"string"}]}`
	widened := `{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"n","type":"long"}]}`
	f := &fakeSchemas{byID: map[int]*avro.Schema{1: parse(v1), 2: parse(conflicting), 3: parse(`"string"`), 4: parse(widened),
		5: parse(`{"type":"record","name":"R","fields":[{"name":"self","type":"R"}]}`)},
		subjects: map[string][]int{"t-value": {1}}}
	enc := func(id int, schema, datum string) []byte {
		b, err := avro.EncodeJSON(schema, id, datum)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := enc(1, v1, `{"id":1,"n":2}`)
	cases := []struct {
		name  string
		value []byte
		code  string
	}{
		{"valid", good, ""},
		{"widened column", enc(4, widened, `{"id":1,"n":2}`), ""},
		{"not framed", []byte("hello"), CodeNotAvro},
		{"empty", []byte{}, CodeNotAvro},
		{"unknown schema id", append(avro.AppendWireHeader(nil, 99), 2, 4), CodeUnknownSchema},
		{"conflicting column", enc(2, conflicting, `{"id":1,"n":"x"}`), CodeRejected},
		{"not a record", enc(3, `"string"`, `"x"`), CodeRejected},
		{"recursive record", append(avro.AppendWireHeader(nil, 5), 0), CodeRejected},
		{"truncated datum", good[:len(good)-1], CodeCorrupt},
		{"trailing bytes", append(append([]byte(nil), good...), 0), CodeCorrupt},
	}
	v := New(f, "t-value", nil)
	for _, c := range cases {
		id, s, payload, err := v.Check(c.value)
		if c.code == "" {
			if err != nil || s == nil || id == 0 || payload == nil {
				t.Errorf("%s: %d %v %v", c.name, id, s, err)
			}
			continue
		}
		var rej *Rejection
		if !errors.As(err, &rej) || rej.Code != c.code {
			t.Errorf("%s: %v, want a %s rejection", c.name, err, c.code)
		}
	}
	if f.synced == 0 {
		t.Error("an unknown id must make the registry catch up before the record is rejected")
	}
	// A registry that cannot answer is not a reason to reject.
	down := &fakeSchemas{down: true}
	if _, _, _, err := New(down, "t-value", nil).Check(good); err == nil || errors.As(err, new(*Rejection)) {
		t.Errorf("registry down: %v", err)
	}
}

// TestUnknownSchemaRegisteredLater: records naming a schema id the registry does not have are refused, and
// accepted once it is registered (a dead letter re-driven after its cause is fixed), without a restart;
// meanwhile the registry is not asked again for every record.
func TestUnknownSchemaRegisteredLater(t *testing.T) {
	schema := `{"type":"record","name":"U","fields":[{"name":"id","type":"long"}]}`
	s, err := avro.Parse(schema)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := avro.EncodeJSON(schema, 7, `{"id":1}`)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSchemas{byID: map[int]*avro.Schema{}, subjects: map[string][]int{"t-value": {7}}}
	clock := time.Unix(1000, 0)
	now = func() time.Time { return clock }
	defer func() { now = time.Now }()
	v := New(f, "t-value", nil)
	var rej *Rejection
	if _, _, _, err := v.Check(rec); !errors.As(err, &rej) || rej.Code != CodeUnknownSchema {
		t.Fatalf("unregistered: %v", err)
	}
	f.byID[7] = s
	synced := f.synced
	for range 100 {
		if _, _, _, err := v.Check(rec); !errors.As(err, &rej) {
			t.Fatalf("within %v of the first lookup: %v", unknownFor, err)
		}
	}
	if f.synced != synced {
		t.Fatalf("the registry was asked again %d times within %v", f.synced-synced, unknownFor)
	}
	clock = clock.Add(unknownFor + time.Millisecond)
	if id, _, _, err := v.Check(rec); err != nil || id != 7 {
		t.Fatalf("after registration: %d %v", id, err)
	}
}

// TestUnknownSchemaRegistryDown: an id found unknown stays unknown while the registry cannot be asked again,
// instead of failing the processor every time its verdict expires.
func TestUnknownSchemaRegistryDown(t *testing.T) {
	rec := append(avro.AppendWireHeader(nil, 9), 2)
	f := &fakeSchemas{byID: map[int]*avro.Schema{}, subjects: map[string][]int{}}
	clock := time.Unix(1000, 0)
	now = func() time.Time { return clock }
	defer func() { now = time.Now }()
	v := New(f, "t-value", nil)
	var rej *Rejection
	if _, _, _, err := v.Check(rec); !errors.As(err, &rej) || rej.Code != CodeUnknownSchema {
		t.Fatalf("unknown: %v", err)
	}
	f.syncErr = errors.New("kafka unreachable")
	clock = clock.Add(unknownFor + time.Millisecond)
	if _, _, _, err := v.Check(rec); !errors.As(err, &rej) || rej.Code != CodeUnknownSchema {
		t.Fatalf("with the registry unreachable: %v, want the unknown-schema rejection", err)
	}
}
