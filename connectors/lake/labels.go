package lake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// ReadLabels returns the labels of a live lake's labels table (see Live)
// by event id, the last one written of an id winning; nil, with no error,
// when root has no labels table (a lake a replay wrote, whose event rows
// carry their labels in ColLabel).
func ReadLabels(ctx context.Context, root string) (map[string]float32, error) {
	dir := filepath.Join(root, LabelsDir)
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	out := map[string]float32{}
	for rec, err := range ReadFiles(ctx, dir, time.Time{}, time.Time{}) {
		if err != nil {
			return nil, err
		}
		s := rec.Schema()
		idc, yc := s.FieldIndices(ColEventID), s.FieldIndices(ColLabel)
		if len(idc) != 1 || len(yc) != 1 {
			return nil, fmt.Errorf("lake: %s is not a labels table (no %s or %s column)", dir, ColEventID, ColLabel)
		}
		ids := rec.Column(idc[0]).(*array.String)
		ys := rec.Column(yc[0]).(*array.Float32)
		for i := range int(rec.NumRows()) {
			if ys.IsValid(i) {
				out[ids.Value(i)] = ys.Value(i)
			}
		}
	}
	return out, nil
}
