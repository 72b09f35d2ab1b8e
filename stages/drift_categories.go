package stages

import (
	"math/rand/v2"

	"github.com/driftline/driftline/detectors/distribution"
	"github.com/driftline/driftline/pipeline"
)

// CategorySubjects are the categorical subjects of spec's feature blocks,
// in the featurize stage's hashed layout (Featurize.NumHashed,
// FeatureNames): one per stages.featurize.categorical field, on its one
// column, then one per text field of stages.text.tokens, on its max_tokens
// word columns (a field listed twice pools both lists of columns). A text
// subject is named after its field, or "<field>.tokens" when a categorical
// subject already has that name.
func CategorySubjects(spec *pipeline.Spec) []CategorySubject {
	var out []CategorySubject
	col := 0
	for _, f := range spec.Stages.Featurize.Categorical {
		out = append(out, CategorySubject{Name: f, Field: f, Columns: []int{col}})
		col++
	}
	categorical := len(out)
	text := map[string]int{} // field → index in out
	for _, t := range spec.Stages.Text.Tokens {
		i, ok := text[t.Field]
		if !ok {
			name := t.Field
			for _, c := range out[:categorical] {
				if c.Name == name {
					name += ".tokens"
					break
				}
			}
			i = len(out)
			text[t.Field] = i
			out = append(out, CategorySubject{Name: name, Field: t.Field})
		}
		for range t.MaxTokens {
			out[i].Columns = append(out[i].Columns, col)
			col++
		}
	}
	return out
}

// categorySubject is a distSubject's categorical part: its hashed columns,
// and its reference and current histograms over the folded codes.
type categorySubject struct {
	columns []int
	profile distribution.CategoryProfile
	window  *distribution.CategoryWindow // nil until profiled
}

func newCategorySubject(cs CategorySubject, bins int) (*categorySubject, error) {
	p, err := distribution.NewCategoryProfile(cs.Name, bins)
	if err != nil {
		return nil, err
	}
	return &categorySubject{columns: append([]int(nil), cs.Columns...), profile: p}, nil
}

// observe counts one row's value of the subject: its one column's code, or
// for several columns one of the present codes drawn uniformly with r (the
// chi-square test needs independent values, and the words of one row are
// not independent; the rows are). A row without a present code is
// skipped. The first refSize values make the reference. It does not
// allocate.
func (c *categorySubject) observe(codes []int32, refSize int, r *rand.Rand) {
	code := int32(-1)
	if len(c.columns) == 1 {
		code = codes[c.columns[0]]
	} else {
		present := 0
		for _, k := range c.columns {
			if codes[k] >= 0 {
				present++
			}
		}
		if present > 0 {
			pick := 0
			if present > 1 {
				pick = r.IntN(present)
			}
			for _, k := range c.columns {
				if codes[k] < 0 {
					continue
				}
				if pick == 0 {
					code = codes[k]
					break
				}
				pick--
			}
		}
	}
	if code < 0 {
		return
	}
	if c.window != nil {
		c.window.Observe(int64(code))
		return
	}
	c.profile.Observe(int64(code))
	if c.profile.Total >= uint64(refSize) {
		c.window = distribution.NewCategoryWindow(&c.profile)
	}
}

// maxColumn is the highest hashed column of subjects, -1 when none.
func maxColumn(subjects []CategorySubject) int {
	hi := -1
	for _, s := range subjects {
		for _, k := range s.Columns {
			hi = max(hi, k)
		}
	}
	return hi
}
