package edge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/minipipe/minipipe/internal/httpapi"
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
	Records       []Record `json:"records"`
	KeySchema     *string  `json:"key_schema"`
	KeySchemaID   *int     `json:"key_schema_id"`
	ValueSchema   *string  `json:"value_schema"`
	ValueSchemaID *int     `json:"value_schema_id"`
}

// Record is one record of a produce request; Key and Value keep their JSON text.
type Record struct {
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition *int32          `json:"partition"`
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// ParseProduceRequest parses and checks the shape of a produce body: malformed JSON is a 400, a body of the
// wrong shape a 422, and "records" must be a non-empty array.
func ParseProduceRequest(body []byte) (*ProduceRequest, *httpapi.Error) {
	var req ProduceRequest
	if err := httpapi.DecodeJSON(body, &req); err != nil {
		return nil, err
	}
	if len(req.Records) == 0 {
		return nil, httpapi.Errorf(422, "records may not be empty")
	}
	for i, r := range req.Records {
		if r.Partition != nil && *r.Partition < 0 {
			return nil, httpapi.Errorf(422, "records[%d].partition must not be negative", i)
		}
	}
	return &req, nil
}

// decodeBinary decodes a binary-format key or value: a base64 string, or null.
func decodeBinary(raw json.RawMessage) ([]byte, error) {
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
func decodeJSONData(raw json.RawMessage) ([]byte, error) {
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
