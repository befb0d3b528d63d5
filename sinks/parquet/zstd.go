package parquet

import (
	"runtime"
	"sync"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// zstdCodec compresses Parquet pages with one shared encoder per level instead of arrow-go's pool of
// encoders: arrow-go takes an encoder from a sync.Pool for every page, and each encoder keeps, per core, a
// history buffer of the default 8 MiB window, so a few files encoding at once held 160 MiB of zstd
// history (a third of the commit stage's heap on wide records). A page is at most about a megabyte (the
// data page limit), so a 1 MiB window finds every match a larger one would, and one encoder per level
// with GOMAXPROCS inner encoders is as fast: compressing is CPU-bound, more concurrent encoders than cores
// only wait. Decoding and streams stay arrow-go's.
type zstdCodec struct {
	compress.Codec // arrow-go's zstd codec: decoding, streaming writers, CompressBound

	mu  sync.Mutex
	enc map[zstd.EncoderLevel]*zstd.Encoder
}

func init() {
	base, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		panic(err)
	}
	compress.RegisterCodec(compress.Codecs.Zstd, &zstdCodec{Codec: base, enc: map[zstd.EncoderLevel]*zstd.Encoder{}})
}

// zstdLevel maps a Parquet compression level (zstd's 1–22, or compress.DefaultCompressionLevel) to the
// levels the Go encoder has: fastest (1–2), default (3–5), better (6–9), best (10 and above). minipipe's
// default is zstd 1, as Arrow C++ (pyarrow) writes: on wide records a third faster than 3 (the default of
// parquet-mr and DuckDB) for files about a fifth larger.
func zstdLevel(level int) zstd.EncoderLevel {
	if level == compress.DefaultCompressionLevel {
		return zstd.SpeedFastest
	}
	return zstd.EncoderLevelFromZstd(level)
}

func (z *zstdCodec) encoder(level zstd.EncoderLevel) *zstd.Encoder {
	z.mu.Lock()
	defer z.mu.Unlock()
	if e := z.enc[level]; e != nil {
		return e
	}
	e, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(level),
		zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil { // the options above are constants: only a bug gets here
		panic(err)
	}
	z.enc[level] = e
	return e
}

func (z *zstdCodec) Encode(dst, src []byte) []byte {
	return z.encoder(zstd.SpeedFastest).EncodeAll(src, dst[:0])
}

func (z *zstdCodec) EncodeLevel(dst, src []byte, level int) []byte {
	return z.encoder(zstdLevel(level)).EncodeAll(src, dst[:0])
}
