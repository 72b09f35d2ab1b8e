package lake

import (
	"io"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
)

// snappyCodec is arrow-go's Snappy codec with s2's standard Snappy
// encoder: arrow-go encodes with klauspost's snappy package, whose Encode
// is s2's slower "better" mode. The output is Snappy all the same, read
// by any reader; a demo lake's file is 0.8% larger, and a lake
// replay spends about 9% less CPU (BENCHMARKS.md, section 9).
//
// It replaces arrow-go's codec for the whole process when this package
// is loaded (compress.RegisterCodec, in init: arrow-go has no per-writer
// codec); the lake is driftline's only Parquet writer.
type snappyCodec struct{}

func init() { compress.RegisterCodec(compress.Codecs.Snappy, snappyCodec{}) }

func (snappyCodec) Encode(dst, src []byte) []byte { return s2.EncodeSnappy(dst, src) }

func (snappyCodec) EncodeLevel(dst, src []byte, _ int) []byte { return s2.EncodeSnappy(dst, src) }

func (c snappyCodec) Decode(dst, src []byte) []byte {
	dst, err := c.DecodeWithError(dst, src)
	if err != nil {
		panic(err) // as arrow-go's codec does; its readers call DecodeWithError
	}
	return dst
}

func (snappyCodec) DecodeWithError(dst, src []byte) ([]byte, error) { return snappy.Decode(dst, src) }

func (snappyCodec) NewReader(r io.Reader) io.ReadCloser { return io.NopCloser(snappy.NewReader(r)) }

func (snappyCodec) CompressBound(n int64) int64 { return int64(snappy.MaxEncodedLen(int(n))) }

func (snappyCodec) NewWriter(w io.Writer) io.WriteCloser { return snappy.NewBufferedWriter(w) }

func (c snappyCodec) NewWriterLevel(w io.Writer, _ int) (io.WriteCloser, error) {
	return c.NewWriter(w), nil
}
