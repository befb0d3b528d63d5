package edge

import (
	"testing"

	"github.com/minipipe/minipipe/internal/avro"
)

// FuzzProduceRequest feeds arbitrary content types and bodies to the produce request parser and the record
// encoders: never a panic, and every refusal is a client error in Confluent's envelope.
func FuzzProduceRequest(f *testing.F) {
	sch, err := avro.Parse(`{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"lastname","type":["null","string"],"default":null}]}`)
	if err != nil {
		f.Fatal(err)
	}
	codec, err := avro.NewCodec(sch)
	if err != nil {
		f.Fatal(err)
	}
	seeds := []struct{ ct, body string }{
		{"application/vnd.kafka.avro.v1+json", `{"value_schema": "{\"type\": \"record\", \"name\": \"User\", \"fields\": [{\"name\": \"name\", \"type\": \"string\"}]}", "records": [{"value": {"name": "alice"}}]}`},
		{"application/vnd.kafka.avro.v2+json", `{"value_schema_id": 1, "records": [{"value": {"name": "bob", "lastname": {"string": "smith"}}, "partition": 1}]}`},
		{"application/vnd.kafka.binary.v2+json", `{"records":[{"key":"a2V5","value":"Y29uZmx1ZW50"},{"value":"a2Fma2E=","partition":1}]}`},
		{"application/vnd.kafka.json.v2+json", `{"records":[{"key":"somekey","value":{"foo":"bar"}},{"value":53.5},{"value":null}]}`},
		{"application/json", `{"records":[]}`},
		{"application/vnd.kafka.v3+json", `{}`},
		{"application/vnd.kafka.avro.v2+json", `{"records":[{"value":{"name":"x","lastname":"y"}}]}`},
		{"text/plain; charset=utf-8", `not json`},
		{"application/vnd.kafka.binary.v2+json", `{"records":[{"value":"////"}], "records":[{"partition":-5}]}`},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		mt, ok := ParseContentType(ct)
		if !ok {
			return
		}
		if mt.Version != 1 && mt.Version != 2 {
			t.Fatalf("version %d from %q", mt.Version, ct)
		}
		req, herr := ParseProduceRequest(body)
		if herr != nil {
			if herr.Status < 400 || herr.Status >= 500 || herr.Code < 400 {
				t.Fatalf("parse error %+v is not a client error", herr)
			}
			return
		}
		if len(req.Records) == 0 {
			t.Fatal("accepted a request without records")
		}
		id := 1
		for _, r := range req.Records {
			if r.Partition != nil && *r.Partition < 0 {
				t.Fatal("accepted a negative partition")
			}
			for _, raw := range [][]byte{r.Key, r.Value} {
				out, err := encodeData(mt.Format, raw, &id, codec)
				if err != nil {
					continue
				}
				if mt.Format == FormatAvro && out != nil {
					gotID, payload, err := avro.ParseWire(out)
					if err != nil || gotID != 1 {
						t.Fatalf("encoded avro %x is not framed: %v", out, err)
					}
					if _, err := codec.NativeFromBinary(payload); err != nil {
						t.Fatalf("encoded avro does not decode: %v", err)
					}
				}
			}
		}
	})
}
