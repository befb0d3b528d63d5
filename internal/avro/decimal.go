package avro

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sync"
)

// ErrDecimalRange is a decimal whose unscaled value has more digits than its precision allows.
var ErrDecimalRange = errors.New("avro: decimal out of range")

// MaxExactDecimalPrecision is the widest precision whose range is checked exactly; wider ones (which no
// table column takes, see sinks/parquet) are checked by bit length.
const MaxExactDecimalPrecision = 1000

// SignificantBytes strips the redundant sign-extension bytes of a big-endian two's-complement integer
// (leading 0x00 before a byte below 0x80, leading 0xFF before a byte from 0x80 up).
func SignificantBytes(raw []byte) []byte {
	for len(raw) > 1 {
		if raw[0] == 0x00 && raw[1] < 0x80 || raw[0] == 0xff && raw[1] >= 0x80 {
			raw = raw[1:]
			continue
		}
		break
	}
	return raw
}

// CheckDecimal checks that raw, Avro's big-endian two's-complement unscaled value, has at most precision
// decimal digits. It costs a few comparisons for values well within range, and one big-integer comparison
// at the edge of it.
func CheckDecimal(raw []byte, precision int) error {
	sig := SignificantBytes(raw)
	if len(sig) == 0 {
		return nil
	}
	// |v| < 2^(8n-1): certainly in range when 2^(8n-1) <= 10^precision.
	bits := 8*len(sig) - 1
	if float64(bits) <= float64(precision)*math.Log2(10)-1e-9 {
		return nil
	}
	v := signedInt(sig)
	if precision > MaxExactDecimalPrecision {
		if float64(v.BitLen()) <= float64(precision)*math.Log2(10) {
			return nil
		}
	} else if v.CmpAbs(pow10(precision)) < 0 {
		return nil
	}
	return fmt.Errorf("%w: a value of %d significant bytes has more than the %d digits of its precision", ErrDecimalRange, len(sig), precision)
}

// signedInt reads a big-endian two's-complement integer.
func signedInt(raw []byte) *big.Int {
	v := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(len(raw))*8))
	}
	return v
}

var (
	pow10Mu sync.Mutex
	pow10s  = map[int]*big.Int{}
)

// pow10 is 10^n, cached (n is a schema's precision, so there are few).
func pow10(n int) *big.Int {
	pow10Mu.Lock()
	defer pow10Mu.Unlock()
	if p, ok := pow10s[n]; ok {
		return p
	}
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	pow10s[n] = p
	return p
}
