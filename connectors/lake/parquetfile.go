package lake

import (
	"context"
	"encoding/base64"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetFile writes records of a flat schema (no nested columns) into
// one Parquet file, in row groups of at most the properties'
// MaxRowGroupLength rows, driving arrow-go's file.Writer (buffered row
// groups) itself and each column through pqarrow.WriteArrowToColumn with
// definition levels it computes in place, where pqarrow.FileWriter builds
// them per call with its path builder in pooled buffers that arrow-go
// zeroes whole on every release. The file is what pqarrow.FileWriter's
// WriteBuffered writes with the same properties (the Arrow schema stored
// with pqarrow.WithStoreSchema), byte for byte
// (TestParquetFileMatchesPqarrow). It is not safe for concurrent use.
type parquetFile struct {
	wr        *file.Writer
	rgw       file.BufferedRowGroupWriter
	rgRows    int64 // rows in rgw
	maxRows   int64
	nullable  []bool          // by column
	ctx       context.Context // pqarrow's write context: scratch buffers
	defLevels []int16
}

func newParquetFile(schema *arrow.Schema, w io.Writer, props *parquet.WriterProperties, arrProps pqarrow.ArrowWriterProperties) (*parquetFile, error) {
	pqschema, err := pqarrow.ToParquet(schema, props, arrProps)
	if err != nil {
		return nil, err
	}
	md := schema.Metadata()
	meta := make(metadata.KeyValueMetadata, 0, md.Len()+1)
	for i, k := range md.Keys() {
		meta.Append(k, md.Values()[i])
	}
	// As pqarrow.WithStoreSchema stores it (a flat schema needs none of
	// its normalization of list element names).
	meta.Append("ARROW:schema", base64.StdEncoding.EncodeToString(flight.SerializeSchema(schema, props.Allocator())))
	wr, err := file.NewParquetWriterWithError(w, pqschema.Root(), file.WithWriterProps(props), file.WithWriteMetadata(meta))
	if err != nil {
		return nil, err
	}
	p := &parquetFile{wr: wr, maxRows: props.MaxRowGroupLength(), nullable: make([]bool, schema.NumFields()),
		ctx: pqarrow.NewArrowWriteContext(context.Background(), &arrProps)}
	for i, f := range schema.Fields() {
		p.nullable[i] = f.Nullable
	}
	return p, nil
}

// write appends rec's rows. Like pqarrow.FileWriter.WriteBuffered, a full
// row group is closed when the next row arrives.
func (p *parquetFile) write(rec arrow.RecordBatch) error {
	n := rec.NumRows()
	for off := int64(0); off < n; {
		if p.rgw == nil || p.rgRows == p.maxRows {
			rgw, err := p.wr.AppendBufferedRowGroupChecked() // closes the previous one
			if err != nil {
				return err
			}
			p.rgw, p.rgRows = rgw, 0
		}
		m := min(n-off, p.maxRows-p.rgRows)
		if err := p.writeColumns(rec.Columns(), off, m); err != nil {
			return err
		}
		p.rgRows += m
		off += m
	}
	return nil
}

// writeColumns writes rows [off, off+m) of cols into the open row group.
func (p *parquetFile) writeColumns(cols []arrow.Array, off, m int64) error {
	for c, arr := range cols {
		if err := p.writeColumn(c, arr, off, m); err != nil {
			return err
		}
	}
	return nil
}

// writeColumn writes rows [off, off+m) of column c, arr.
func (p *parquetFile) writeColumn(c int, arr arrow.Array, off, m int64) error {
	cw, err := p.rgw.Column(c)
	if err != nil {
		return err
	}
	if off != 0 || m != int64(arr.Len()) {
		arr = array.NewSlice(arr, off, off+m)
		defer arr.Release()
	}
	var defLevels []int16
	if p.nullable[c] {
		// A flat column's definition level: 1 where the value is
		// present, 0 where it is null.
		defLevels = p.defLevels[:0]
		if arr.NullN() == 0 {
			for range arr.Len() {
				defLevels = append(defLevels, 1)
			}
		} else {
			for i := range arr.Len() {
				if arr.IsValid(i) {
					defLevels = append(defLevels, 1)
				} else {
					defLevels = append(defLevels, 0)
				}
			}
		}
		p.defLevels = defLevels
	}
	return pqarrow.WriteArrowToColumn(p.ctx, cw, arr, defLevels, nil, p.nullable[c])
}

// totalCompressedBytes is the file's size so far, the open row group's
// compressed pages included.
func (p *parquetFile) totalCompressedBytes() int64 { return p.wr.TotalCompressedBytes() }

// close writes the open row group and the footer. It does not close the
// io.Writer unless it is an io.Closer.
func (p *parquetFile) close() error { return p.wr.Close() }
