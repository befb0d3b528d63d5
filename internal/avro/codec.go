package avro

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/linkedin/goavro/v2"
)

// goavro allocates a block's worth of items before reading them; its default limits (2^31 items, 2 GiB)
// let one hostile record value allocate gigabytes. These bound that, process-wide.
func init() {
	goavro.MaxBlockCount = 1 << 20
	goavro.MaxBlockSize = 64 << 20
}

// Codec converts between Avro's JSON encoding, Go values and Avro binary for one schema. It is safe for
// concurrent use.
type Codec struct {
	Schema *Schema
	gc     *goavro.Codec
}

// NewCodec builds a codec for a parsed schema.
func NewCodec(s *Schema) (*Codec, error) {
	opt := goavro.DefaultCodecOption()
	opt.EnableStringNull = false // "null" is a string, not null
	gc, err := goavro.NewCodecWithOptions(s.Expanded(), opt)
	if err != nil {
		return nil, fmt.Errorf("avro codec: %w", err)
	}
	return &Codec{Schema: s, gc: gc}, nil
}

// DataError is a datum that does not fit its schema, or bytes that are not a datum of it.
type DataError struct{ Err error }

func (e *DataError) Error() string { return e.Err.Error() }
func (e *DataError) Unwrap() error { return e.Err }

// NativeFromBinary decodes one binary datum into goavro's Go representation and checks that no bytes are
// left over.
func (c *Codec) NativeFromBinary(b []byte) (any, error) {
	native, rest, err := c.gc.NativeFromBinary(b)
	if err != nil {
		return nil, &DataError{Err: err}
	}
	if len(rest) != 0 {
		return nil, &DataError{Err: fmt.Errorf("%d bytes left after the datum", len(rest))}
	}
	return native, nil
}

// JSONFromBinary renders a binary datum in Avro's JSON encoding.
func (c *Codec) JSONFromBinary(b []byte) ([]byte, error) {
	native, err := c.NativeFromBinary(b)
	if err != nil {
		return nil, err
	}
	out, err := c.gc.TextualFromNative(nil, native)
	if err != nil {
		return nil, &DataError{Err: err}
	}
	return out, nil
}

// Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro binary datum.
const (
	MagicByte       = 0
	WireHeaderSize  = 5
	maxWireSchemaID = 1<<31 - 1
)

// ErrUnknownMagic is a record value that does not start with Confluent's magic byte.
var ErrUnknownMagic = errors.New("unknown magic byte")

// AppendWireHeader appends the Confluent framing header for a schema id.
func AppendWireHeader(dst []byte, id int) []byte {
	dst = append(dst, MagicByte)
	return binary.BigEndian.AppendUint32(dst, uint32(id))
}

// ParseWire splits a Confluent-framed value into schema id and Avro payload.
func ParseWire(b []byte) (id int, payload []byte, err error) {
	if len(b) < WireHeaderSize {
		if len(b) > 0 && b[0] != MagicByte {
			return 0, nil, ErrUnknownMagic
		}
		return 0, nil, fmt.Errorf("value of %d bytes is too short for the 5-byte schema header", len(b))
	}
	if b[0] != MagicByte {
		return 0, nil, ErrUnknownMagic
	}
	u := binary.BigEndian.Uint32(b[1:5])
	if u > maxWireSchemaID {
		return 0, nil, fmt.Errorf("schema id %d out of range", u)
	}
	return int(u), b[5:], nil
}

// EncodeJSON encodes one datum given in Avro's JSON encoding with the schema's text, framed in Confluent's
// wire format with schema id id: what a Confluent Avro producer writes (tests and tools build records so).
func EncodeJSON(schema string, id int, datum string) ([]byte, error) {
	s, err := Parse(schema)
	if err != nil {
		return nil, err
	}
	c, err := NewCodec(s)
	if err != nil {
		return nil, err
	}
	return c.AppendBinaryFromJSON(AppendWireHeader(nil, id), []byte(datum))
}
