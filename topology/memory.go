package topology

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// ByteSize is a flag of bytes: 1073741824, 1GiB, 512MiB, 1.5GB, 64KiB; 0 is none.
type ByteSize struct {
	N     int64
	Given bool // on the command line, in the config file or the environment
}

var byteUnits = []struct {
	suffix string
	n      float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseByteSize reads a size in bytes with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB).
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range byteUnits {
		if len(t) > len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.n
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	n := math.Round(v * mult)
	if err != nil || v < 0 || math.IsNaN(v) || n >= math.MaxInt64 || v > 0 && n == 0 {
		return 0, fmt.Errorf("%q is not a size in bytes (for example 1GiB, 512MiB or 1073741824)", s)
	}
	return int64(n), nil
}

func (b *ByteSize) Set(s string) error {
	n, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	b.N, b.Given = n, true
	return nil
}

func (b *ByteSize) String() string {
	switch {
	case b.N == 0:
		return "0"
	case b.N%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b.N>>30)
	case b.N%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b.N>>20)
	}
	return strconv.FormatInt(b.N, 10)
}

func (b *ByteSize) Type() string { return "bytes" }

// minMemoryLimit is the least --memory-limit minipipe takes (other than 0, none): below it the collector
// would run all the time.
const minMemoryLimit = 128 << 20

// defaultWriteBudget is the commit stage's budget with no memory limit.
const defaultWriteBudget = 256 << 20

// writeBudget is the memory the open Parquet files of this instance may hold: a quarter of the memory
// limit (the rest is Kafka's fetch buffers, the state stores, the REST edge and the collector's headroom).
func (c *Config) writeBudget() int64 {
	if c.MemoryLimit.N <= 0 {
		return defaultWriteBudget
	}
	return max(c.MemoryLimit.N/4, 16<<20)
}

// applyMemoryLimit sets the Go runtime's soft memory limit for a `minipipe run` process: --memory-limit
// when given (0: none), else GOMEMLIMIT from the environment when set, else the default. The collector
// then runs more often as the heap nears it instead of letting it double: the resident memory stays near
// the limit whatever the backlog. cfg.MemoryLimit is left as the limit in force (0: none).
func applyMemoryLimit(cfg *Config, log *slog.Logger) {
	switch {
	case cfg.MemoryLimit.Given || os.Getenv("GOMEMLIMIT") == "":
		if cfg.MemoryLimit.N > 0 {
			debug.SetMemoryLimit(cfg.MemoryLimit.N)
		} else {
			debug.SetMemoryLimit(math.MaxInt64)
		}
	default:
		if n := debug.SetMemoryLimit(-1); n < math.MaxInt64 {
			cfg.MemoryLimit.N = n
		} else {
			cfg.MemoryLimit.N = 0
		}
	}
	if cfg.MemoryLimit.N > 0 {
		log.Info("memory limit", "limit", cfg.MemoryLimit.String(), "parquet_write_budget", (&ByteSize{N: cfg.writeBudget()}).String())
	} else {
		log.Info("no memory limit: the heap may grow to twice what is live", "parquet_write_budget", (&ByteSize{N: cfg.writeBudget()}).String())
	}
}
