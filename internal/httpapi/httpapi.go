// Package httpapi holds what minipipe's Confluent-compatible HTTP APIs share: the error envelope
// {"error_code", "message"}, media-type negotiation with Jersey's answers (415, 406), bounded body reading
// (413) and JSON decoding that tells malformed JSON (400) from JSON of the wrong shape (422).
package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Error is an API error in Confluent's envelope.
type Error struct {
	Status  int    `json:"-"`
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

// Errorf builds an error whose error_code is the HTTP status.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Code: status, Message: fmt.Sprintf(format, args...)}
}

// The framework-level errors, worded as Jersey/rest-utils word them.
var (
	ErrUnsupportedMediaType = &Error{Status: 415, Code: 415, Message: "HTTP 415 Unsupported Media Type"}
	ErrNotAcceptable        = &Error{Status: 406, Code: 406, Message: "HTTP 406 Not Acceptable"}
	ErrNotFound             = &Error{Status: 404, Code: 404, Message: "HTTP 404 Not Found"}
	ErrMethodNotAllowed     = &Error{Status: 405, Code: 405, Message: "HTTP 405 Method Not Allowed"}
)

// WriteJSON writes v as JSON with the given status and content type.
func WriteJSON(w http.ResponseWriter, status int, contentType string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = 500
		buf.Reset()
		fmt.Fprintf(&buf, `{"error_code":500,"message":%q}`, "encoding the response: "+err.Error())
	}
	WriteRaw(w, status, contentType, bytes.TrimRight(buf.Bytes(), "\n"))
}

// WriteRaw writes a body as is.
func WriteRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteError writes an error envelope.
func WriteError(w http.ResponseWriter, contentType string, e *Error) {
	WriteJSON(w, e.Status, contentType, e)
}

// MediaType is a parsed media range with its quality.
type MediaType struct {
	Type, Subtype string
	Q             float64
	Suffix        string // the +json of application/vnd.kafka.v2+json
}

// ParseMediaType parses one media type, ignoring parameters other than q.
func ParseMediaType(s string) (MediaType, bool) {
	mt, params, err := mime.ParseMediaType(strings.TrimSpace(s))
	if err != nil {
		return MediaType{}, false
	}
	i := strings.IndexByte(mt, '/')
	if i <= 0 || i == len(mt)-1 {
		return MediaType{}, false
	}
	m := MediaType{Type: mt[:i], Subtype: mt[i+1:], Q: 1}
	if q, ok := params["q"]; ok {
		if f, err := strconv.ParseFloat(q, 64); err == nil {
			m.Q = f
		}
	}
	return m, true
}

// String renders type/subtype.
func (m MediaType) String() string { return m.Type + "/" + m.Subtype }

// Negotiate picks the first of offers (in order of preference) that the Accept header allows, honouring
// wildcards and q-values; an absent or empty Accept takes the first offer.
func Negotiate(accept string, offers []string) (string, bool) {
	if strings.TrimSpace(accept) == "" {
		return offers[0], true
	}
	var ranges []MediaType
	for _, part := range strings.Split(accept, ",") {
		if m, ok := ParseMediaType(part); ok && m.Q > 0 {
			ranges = append(ranges, m)
		}
	}
	sort.SliceStable(ranges, func(i, j int) bool { return ranges[i].Q > ranges[j].Q })
	for _, rg := range ranges {
		for _, o := range offers {
			om, _ := ParseMediaType(o)
			if (rg.Type == "*" || rg.Type == om.Type) && (rg.Subtype == "*" || rg.Subtype == om.Subtype) {
				return o, true
			}
		}
	}
	return "", false
}

// ReadBody reads a request body of at most limit bytes; a larger one is a 413.
func ReadBody(r *http.Request, limit int64) ([]byte, *Error) {
	if r.ContentLength > limit {
		return nil, Errorf(413, "Request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, Errorf(400, "Error reading the request body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, Errorf(413, "Request body is larger than the limit of %d bytes", limit)
	}
	return body, nil
}

// DecodeJSON decodes a JSON body into v. Malformed JSON is a 400; JSON of the wrong shape (a string where
// a number belongs, …) is a 422. Unknown fields are accepted and ignored.
func DecodeJSON(body []byte, v any) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		return Errorf(400, "Bad Request: the request body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "the request body"
			}
			return Errorf(422, "Unprocessable Entity: %s must be %s, not JSON %s", field, describeType(te.Type.String()), te.Value)
		}
		return Errorf(400, "Bad Request: malformed JSON: %v", err)
	}
	if dec.More() {
		return Errorf(400, "Bad Request: unexpected data after the JSON body")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(400, "Bad Request: unexpected data after the JSON body")
	}
	return nil
}

func describeType(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "*int"):
		return "an integer"
	case t == "string", t == "*string":
		return "a string"
	case t == "bool", t == "*bool":
		return "a boolean"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	default:
		return "an object"
	}
}
