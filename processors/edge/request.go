package edge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/minipipe/minipipe/internal/httpapi"
	"github.com/minipipe/minipipe/internal/jsonscan"
)

// Format is a REST Proxy embedded format.
type Format int

// The embedded formats of the v1/v2 produce API.
const (
	FormatBinary Format = iota
	FormatJSON
	FormatAvro
)

func (f Format) String() string { return [...]string{"binary", "json", "avro"}[f] }

// MediaType is a parsed REST Proxy request content type.
type MediaType struct {
	Version int // 1 or 2
	Format  Format
}

// ParseContentType parses a produce request's Content-Type following Confluent's grammar
// application/vnd.kafka[.embedded].v{1,2}+json and the less specific types it also accepts, which mean
// binary (application/vnd.kafka+json, application/vnd.kafka.v1+json, application/json,
// application/octet-stream).
func ParseContentType(s string) (MediaType, bool) {
	m, ok := httpapi.ParseMediaType(s)
	if !ok || m.Type != "application" {
		return MediaType{}, false
	}
	switch m.Subtype {
	case "json", "octet-stream", "vnd.kafka+json":
		return MediaType{Version: 1, Format: FormatBinary}, true
	}
	sub, ok := strings.CutSuffix(m.Subtype, "+json")
	if !ok {
		return MediaType{}, false
	}
	rest, ok := strings.CutPrefix(sub, "vnd.kafka.")
	if !ok {
		return MediaType{}, false
	}
	parts := strings.Split(rest, ".")
	mt := MediaType{Version: 1, Format: FormatBinary}
	switch len(parts) {
	case 1: // vnd.kafka.v2+json or vnd.kafka.avro+json (Karapace accepts an embedded format without a version)
		if v, ok := parseVersion(parts[0]); ok {
			mt.Version = v
			return mt, true
		}
		f, ok := parseFormat(parts[0])
		mt.Format = f
		return mt, ok
	case 2:
		f, ok1 := parseFormat(parts[0])
		v, ok2 := parseVersion(parts[1])
		mt.Format, mt.Version = f, v
		return mt, ok1 && ok2
	}
	return MediaType{}, false
}

func parseVersion(s string) (int, bool) {
	switch s {
	case "v1":
		return 1, true
	case "v2":
		return 2, true
	}
	return 0, false
}

func parseFormat(s string) (Format, bool) {
	switch s {
	case "binary":
		return FormatBinary, true
	case "json":
		return FormatJSON, true
	case "avro":
		return FormatAvro, true
	}
	return 0, false
}

// ProduceRequest is the body of a v1/v2 produce request.
type ProduceRequest struct {
	Records       []Record
	KeySchema     *string
	KeySchemaID   *int
	ValueSchema   *string
	ValueSchemaID *int
}

// Record is one record of a produce request; Key and Value keep their JSON text (nil when absent).
type Record struct {
	Key       []byte
	Value     []byte
	Partition *int32
}

func isNull(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// ParseProduceRequest parses a produce body in one pass, keeping each key and value as raw JSON for the
// encoders. Malformed JSON is a 400 and JSON of the wrong shape a 422, as with Confluent's Jackson; unknown
// members are ignored; "records" must be a non-empty array.
func ParseProduceRequest(body []byte) (*ProduceRequest, *httpapi.Error) {
	s := jsonscan.New(body)
	var req ProduceRequest
	if err := parseEnvelope(s, &req); err != nil {
		return nil, asRequestError(err)
	}
	if !s.AtEnd() {
		return nil, httpapi.Errorf(400, "Bad Request: unexpected data after the JSON body at byte %d", s.Pos)
	}
	if len(req.Records) == 0 {
		return nil, httpapi.Errorf(422, "records may not be empty")
	}
	return &req, nil
}

// shapeError is valid JSON of the wrong shape.
type shapeError struct{ msg string }

func (e *shapeError) Error() string { return e.msg }

func shapef(format string, args ...any) error { return &shapeError{fmt.Sprintf(format, args...)} }

func asRequestError(err error) *httpapi.Error {
	if se, ok := err.(*shapeError); ok {
		return httpapi.Errorf(422, "Unprocessable Entity: %s", se.msg)
	}
	return httpapi.Errorf(400, "Bad Request: %v", err)
}

func parseEnvelope(s *jsonscan.Scanner, req *ProduceRequest) error {
	if k := s.Peek(); k != jsonscan.Object {
		if k == jsonscan.Invalid {
			_, err := s.Skip()
			if err == nil {
				err = fmt.Errorf("the request body is empty")
			}
			return err
		}
		if _, err := s.Skip(); err != nil {
			return err
		}
		return shapef("the request body must be a JSON object, not %s", k)
	}
	empty, err := s.ObjectStart()
	if err != nil || empty {
		return err
	}
	var keyBuf []byte
	for {
		key, err := s.Key(keyBuf)
		if err != nil {
			return err
		}
		switch string(key) {
		case "records": // a repeated member replaces the earlier one, as with Jackson
			req.Records = req.Records[:0]
			if err := parseRecords(s, req); err != nil {
				return err
			}
		case "key_schema":
			if req.KeySchema, err = optString(s, "key_schema"); err != nil {
				return err
			}
		case "value_schema":
			if req.ValueSchema, err = optString(s, "value_schema"); err != nil {
				return err
			}
		case "key_schema_id":
			if req.KeySchemaID, err = optInt(s, "key_schema_id"); err != nil {
				return err
			}
		case "value_schema_id":
			if req.ValueSchemaID, err = optInt(s, "value_schema_id"); err != nil {
				return err
			}
		default:
			if _, err := s.Skip(); err != nil {
				return err
			}
		}
		more, err := s.More('}')
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

func optString(s *jsonscan.Scanner, name string) (*string, error) {
	switch k := s.Peek(); k {
	case jsonscan.Null:
		return nil, s.Literal("null")
	case jsonscan.String:
		b, err := s.String(nil)
		if err != nil {
			return nil, err
		}
		str := string(b)
		return &str, nil
	default:
		if _, err := s.Skip(); err != nil {
			return nil, err
		}
		return nil, shapef("%s must be a string (the schema as escaped JSON text), not %s", name, k)
	}
}

func optInt(s *jsonscan.Scanner, name string) (*int, error) {
	switch k := s.Peek(); k {
	case jsonscan.Null:
		return nil, s.Literal("null")
	case jsonscan.Number:
		v, err := s.Int(math.MinInt32, math.MaxInt32)
		if err != nil {
			if _, ok := err.(*jsonscan.SyntaxError); ok {
				return nil, err
			}
			return nil, shapef("%s must be an integer: %v", name, err)
		}
		n := int(v)
		return &n, nil
	default:
		if _, err := s.Skip(); err != nil {
			return nil, err
		}
		return nil, shapef("%s must be an integer, not %s", name, k)
	}
}

func parseRecords(s *jsonscan.Scanner, req *ProduceRequest) error {
	if k := s.Peek(); k != jsonscan.Array {
		if _, err := s.Skip(); err != nil {
			return err
		}
		if k == jsonscan.Null {
			return nil
		}
		return shapef("records must be an array, not %s", k)
	}
	empty, err := s.ArrayStart()
	if err != nil || empty {
		return err
	}
	var keyBuf []byte
	for i := 0; ; i++ {
		if k := s.Peek(); k != jsonscan.Object {
			if _, err := s.Skip(); err != nil {
				return err
			}
			return shapef("records[%d] must be an object, not %s", i, k)
		}
		var rec Record
		empty, err := s.ObjectStart()
		if err != nil {
			return err
		}
		for !empty {
			key, err := s.Key(keyBuf)
			if err != nil {
				return err
			}
			switch string(key) {
			case "key":
				if rec.Key, err = s.Skip(); err != nil {
					return err
				}
			case "value":
				if rec.Value, err = s.Skip(); err != nil {
					return err
				}
			case "partition":
				p, err := optInt(s, fmt.Sprintf("records[%d].partition", i))
				if err != nil {
					return err
				}
				if p != nil {
					if *p < 0 {
						return shapef("records[%d].partition must not be negative", i)
					}
					v := int32(*p)
					rec.Partition = &v
				}
			default:
				if _, err := s.Skip(); err != nil {
					return err
				}
			}
			more, err := s.More('}')
			if err != nil {
				return err
			}
			empty = !more
		}
		req.Records = append(req.Records, rec)
		more, err := s.More(']')
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// decodeBinary decodes a binary-format key or value: a base64 string, or null.
func decodeBinary(raw []byte) ([]byte, error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("expected a base64 string, got %s", truncate(string(raw)))
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %v", err)
	}
	return b, nil
}

// decodeJSONData compacts a json-format key or value; null means none.
func decodeJSONData(raw []byte) ([]byte, error) {
	if isNull(raw) {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func truncate(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
