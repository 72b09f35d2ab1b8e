package feed

import (
	"fmt"
	"strconv"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/evaluate"
	"github.com/driftline/driftline/testkit/streams"
)

// streamAttributes names a concept's attributes, which are the first
// slots of streams.Event.F.
func streamAttributes(cfg streams.Config) ([]string, error) {
	switch cfg.Concept {
	case streams.ConceptSEA:
		return []string{"x0", "x1", "x2"}, nil
	case streams.ConceptAgrawal:
		return []string{"salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan"}, nil
	case streams.ConceptHyperplane:
		n := cfg.Features
		if n == 0 {
			n = 10
		}
		names := make([]string, n)
		for i := range names {
			names[i] = "x" + strconv.Itoa(i)
		}
		return names, nil
	}
	return nil, fmt.Errorf("unknown stream %q (want sea, agrawal or hyperplane)", cfg.Concept)
}

// Dataset draws events rows of a seeded stream into memory for
// prequential evaluation: its concept's attributes as dense features, and
// the label.
func Dataset(cfg streams.Config, events int) (*evaluate.Dataset, error) {
	if events < 1 {
		return nil, fmt.Errorf("events %d < 1", events)
	}
	names, err := streamAttributes(cfg)
	if err != nil {
		return nil, err
	}
	gen, err := streams.NewGenerator(cfg)
	if err != nil {
		return nil, err
	}
	nd := len(names)
	d := &evaluate.Dataset{Dense: names, Label: "y", Labels: make([]float64, events),
		Rows: models.Rows{N: events, NumDense: nd, Dense: make([]float32, events*nd)}}
	var e streams.Event
	for i := range events {
		gen.Next(&e)
		row := d.Rows.DenseRow(i)
		for j := range row {
			row[j] = float32(e.F[j])
		}
		d.Labels[i] = float64(e.Label)
	}
	return d, nil
}
