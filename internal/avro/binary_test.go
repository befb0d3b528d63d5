package avro

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/big"
	"testing"
	"time"
)

func mustParse(t testing.TB, text string) *Schema {
	t.Helper()
	s, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// blocks encodes array blocks of the given counts (items of zero width follow nothing) and the end.
func blocks(counts ...int64) []byte {
	var b []byte
	for _, n := range counts {
		b = binary.AppendVarint(b, n)
	}
	return append(b, 0)
}

// twos renders v as big-endian two's complement in n bytes.
func twos(v *big.Int, n int) []byte {
	if v.Sign() >= 0 {
		return v.FillBytes(make([]byte, n))
	}
	m := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(8*n)), v)
	return m.FillBytes(make([]byte, n))
}

func decimalBytes(v *big.Int, n int) []byte {
	raw := twos(v, n)
	return append(binary.AppendVarint(nil, int64(len(raw))), raw...)
}

func TestValidateBounds(t *testing.T) {
	nulls := `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}}]}`
	empties := `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":{"type":"record","name":"E","fields":[]}}}]}`
	nested := `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":{"type":"array","items":"null"}}}]}`
	longs := `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"long"}}]}`
	maps := `{"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":"long"}}]}`
	dec38 := `{"type":"record","name":"R","fields":[{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":2}}]}`
	dec4 := `{"type":"record","name":"R","fields":[{"name":"d","type":{"type":"fixed","name":"F","size":4,"logicalType":"decimal","precision":4,"scale":0}}]}`

	ten38 := new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil)
	below := new(big.Int).Sub(ten38, big.NewInt(1))
	billion := func() []byte { // a billion nulls in about a kilobyte: 200 blocks of 5 million
		var counts []int64
		for i := 0; i < 200; i++ {
			counts = append(counts, 5_000_000)
		}
		return blocks(counts...)
	}()
	innerBombs := func() []byte { // 300 inner arrays of 2^24 nulls each
		b := binary.AppendVarint(nil, 300)
		for i := 0; i < 300; i++ {
			b = append(b, blocks(1<<24)...)
		}
		return append(b, 0)
	}()

	cases := []struct {
		name    string
		schema  string
		payload []byte
		want    error // nil: accepted
	}{
		{"17 bytes of 2^24 nulls, three times", nulls, blocks(1<<24, 1<<24, 1<<24), ErrTooManyItems},
		{"a billion nulls in a kilobyte", nulls, billion, ErrTooManyItems},
		{"nested arrays of nulls", nested, innerBombs, ErrTooManyItems},
		{"empty records", empties, blocks(1 << 30), ErrTooManyItems},
		{"a negative block count with its size", nulls, append(binary.AppendVarint(binary.AppendVarint(nil, -(1<<40)), 0), 0), ErrTooManyItems},
		{"a few nulls", nulls, blocks(1000), nil},
		{"a thousand nulls in a short record", nulls, blocks(1024), nil},
		{"longs bounded by their bytes", longs, append(blocks(3)[:1], 2, 4, 6, 0), nil},
		{"more longs declared than bytes", longs, append(blocks(1000)[:2], 2, 0), ErrShort},
		{"a map", maps, []byte{2, 2, 'k', 4, 0}, nil},
		{"decimal(38) at 10^38-1", dec38, decimalBytes(below, 16), nil},
		{"decimal(38) at -(10^38-1)", dec38, decimalBytes(new(big.Int).Neg(below), 16), nil},
		{"decimal(38) at 10^38", dec38, decimalBytes(ten38, 17), ErrDecimalRange},
		{"decimal(38) of 17 significant bytes", dec38, decimalBytes(new(big.Int).Lsh(big.NewInt(1), 130), 17), ErrDecimalRange},
		{"decimal(38) with sign-extension padding", dec38, decimalBytes(big.NewInt(-5), 20), nil},
		{"decimal(38) of a megabyte", dec38, decimalBytes(new(big.Int).Lsh(big.NewInt(1), 8<<20-2), 1<<20), ErrDecimalRange},
		{"fixed decimal(4) at 9999", dec4, twos(big.NewInt(9999), 4), nil},
		{"fixed decimal(4) at 10000", dec4, twos(big.NewInt(10000), 4), ErrDecimalRange},
		{"fixed decimal(4) at -10000", dec4, twos(big.NewInt(-10000), 4), ErrDecimalRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.schema)
			start := time.Now()
			err := Validate(s, c.payload)
			if d := time.Since(start); d > 20*time.Millisecond {
				t.Errorf("validating %d bytes took %v", len(c.payload), d)
			}
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestMaxRecordItems(t *testing.T) {
	old := MaxRecordItems
	MaxRecordItems = 10
	defer func() { MaxRecordItems = old }()
	s := mustParse(t, `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"boolean"}}]}`)
	ok := append(blocks(10)[:1], bytes.Repeat([]byte{1}, 10)...)
	if err := Validate(s, append(ok, 0)); err != nil {
		t.Fatalf("10 items refused: %v", err)
	}
	over := append(blocks(11)[:1], bytes.Repeat([]byte{1}, 11)...)
	if err := Validate(s, append(over, 0)); !errors.Is(err, ErrTooManyItems) {
		t.Fatalf("11 items: %v", err)
	}
}

func TestJSONDecimalPrecision(t *testing.T) {
	s := mustParse(t, `{"type":"record","name":"R","fields":[{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}}]}`)
	c, err := NewCodec(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendBinaryFromJSON(nil, []byte(`{"d":"\u0027\u000f"}`)); err != nil { // 9999
		t.Fatalf("9999 refused: %v", err)
	}
	_, err = c.AppendBinaryFromJSON(nil, []byte(`{"d":"\u0027\u0010"}`)) // 10000
	if !errors.Is(err, ErrDecimalRange) {
		t.Fatalf("10000 in decimal(4,2): %v", err)
	}
	// 17 bytes: more than any decimal(38) can hold.
	_, err = c.AppendBinaryFromJSON(nil, []byte(`{"d":"\u0001\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}`))
	if !errors.Is(err, ErrDecimalRange) {
		t.Fatalf("17 bytes: %v", err)
	}
}
