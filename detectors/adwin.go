package detectors

import (
	"fmt"
	"math"
)

// ADWINConfig holds ADWIN's parameters. Start from DefaultADWINConfig.
type ADWINConfig struct {
	// Delta is the significance value of the cut test, in (0, 1). Default 0.002.
	Delta float64
	// Clock is how many updates pass between two change checks. Default 32.
	Clock int
	// MaxBuckets is how many buckets of each size are kept before two are
	// merged, in [1, MaxADWINBuckets]. Default 5.
	MaxBuckets int
	// MinWindowLength is the smallest sub-window a cut may leave. Default 5.
	MinWindowLength int
	// GracePeriod is how many values the window must hold before any check.
	// Default 10.
	GracePeriod int
}

// MaxADWINBuckets bounds ADWINConfig.MaxBuckets: each of the at most 64
// bucket rows holds MaxBuckets+1 buckets of 16 bytes.
const MaxADWINBuckets = 1 << 16

// DefaultADWINConfig returns River's defaults.
func DefaultADWINConfig() ADWINConfig {
	return ADWINConfig{Delta: 0.002, Clock: 32, MaxBuckets: 5, MinWindowLength: 5, GracePeriod: 10}
}

// Validate reports the first invalid parameter, wrapping ErrInvalidConfig.
func (c ADWINConfig) Validate() error {
	switch {
	case !(c.Delta > 0 && c.Delta < 1):
		return fmt.Errorf("adwin: delta %v not in (0, 1): %w", c.Delta, ErrInvalidConfig)
	case c.Clock < 1:
		return fmt.Errorf("adwin: clock %d < 1: %w", c.Clock, ErrInvalidConfig)
	case c.MaxBuckets < 1 || c.MaxBuckets > MaxADWINBuckets:
		return fmt.Errorf("adwin: max buckets %d not in [1, %d]: %w", c.MaxBuckets, MaxADWINBuckets, ErrInvalidConfig)
	case c.MinWindowLength < 1:
		return fmt.Errorf("adwin: min window length %d < 1: %w", c.MinWindowLength, ErrInvalidConfig)
	case c.GracePeriod < 0:
		return fmt.Errorf("adwin: grace period %d < 0: %w", c.GracePeriod, ErrInvalidConfig)
	}
	return nil
}

// adwinRow holds the buckets of one size, 2^row elements each, oldest first.
type adwinRow struct {
	total    []float64
	variance []float64
	n        int
}

func (r *adwinRow) push(total, variance float64) {
	r.total[r.n] = total
	r.variance[r.n] = variance
	r.n++
}

// dropOldest removes the k oldest buckets of the row.
func (r *adwinRow) dropOldest(k int) {
	copy(r.total, r.total[k:r.n])
	copy(r.variance, r.variance[k:r.n])
	r.n -= k
}

// ADWIN is the ADaptive WINdowing detector of Bifet & Gavaldà, in its ADWIN2
// form: the window is an exponential histogram of buckets (O(log W) memory and
// amortized O(1) work per value), and every Clock updates it looks for a cut
// into two sub-windows whose means differ by more than the Hoeffding-style
// bound ε_cut. On a cut it drops the oldest buckets and reports a drift.
//
// It matches River's ADWIN (delta=0.002, clock=32, max_buckets=5,
// min_window_length=5, grace_period=10), including which buckets are
// evaluated as cut points. Statistic is the window mean (River's estimation).
//
// Reference: Albert Bifet and Ricard Gavaldà. "Learning from time-changing data
// with adaptive windowing." Proceedings of the 2007 SIAM International
// Conference on Data Mining, pp. 443-448.
type ADWIN struct {
	cfg      ADWINConfig
	rows     []adwinRow // rows[i] holds buckets of 2^i values; rows[nRows:] are spare
	nRows    int
	total    float64
	variance float64 // sum of squared deviations of the window
	width    float64
	tick     int
	drift    bool
	rejected uint64
}

// NewADWIN validates cfg and returns a detector.
func NewADWIN(cfg ADWINConfig) (*ADWIN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &ADWIN{cfg: cfg}
	d.reset()
	return d, nil
}

// Name returns "ADWIN".
func (d *ADWIN) Name() string { return "ADWIN" }

// DriftDetected reports whether the last Update detected a drift.
func (d *ADWIN) DriftDetected() bool { return d.drift }

// WarningDetected is always false: ADWIN has no warning zone.
func (d *ADWIN) WarningDetected() bool { return false }

// Rejected is the number of non-finite values rejected.
func (d *ADWIN) Rejected() uint64 { return d.rejected }

// Statistic returns the mean of the current window (0 when empty).
func (d *ADWIN) Statistic() float64 { return d.Estimation() }

// Width is the number of values in the current window.
func (d *ADWIN) Width() int { return int(d.width) }

// Estimation is the mean of the current window, 0 when it is empty.
func (d *ADWIN) Estimation() float64 {
	if d.width == 0 {
		return 0
	}
	return d.total / d.width
}

// Reset empties the window and the rejected counter. It keeps the bucket
// storage, so a reset detector does not allocate again.
func (d *ADWIN) Reset() {
	d.reset()
	d.rejected = 0
}

func (d *ADWIN) reset() {
	for i := range d.rows[:d.nRows] {
		d.rows[i].n = 0
	}
	d.nRows = 0
	d.total, d.variance, d.width = 0, 0, 0
	d.tick = 0
	d.drift = false
	d.ensureRow(0)
}

// ensureRow makes rows[i] usable, reusing spare storage when it exists.
func (d *ADWIN) ensureRow(i int) {
	if i < d.nRows {
		return
	}
	if i >= len(d.rows) {
		size := d.cfg.MaxBuckets + 1
		d.rows = append(d.rows, adwinRow{total: make([]float64, size), variance: make([]float64, size)})
	}
	d.rows[i].n = 0
	d.nRows = i + 1
}

// Update adds x to the window and, every Clock values, checks for a cut.
func (d *ADWIN) Update(x float64) {
	if d.drift {
		d.reset()
	}
	if !isFinite(x) {
		d.rejected++
		return
	}
	d.insert(x)
	d.drift = d.detectChange()
}

func (d *ADWIN) insert(x float64) {
	d.rows[0].push(x, 0)
	d.width++
	if d.width > 1 {
		dev := x - d.total/(d.width-1)
		d.variance += (d.width - 1) * dev * dev / d.width
	}
	d.total += x
	d.compress()
}

// compress merges the two oldest buckets of every full row into the next row.
func (d *ADWIN) compress() {
	full := d.cfg.MaxBuckets + 1
	for i := 0; i < d.nRows; i++ {
		row := &d.rows[i]
		if row.n != full {
			return
		}
		d.ensureRow(i + 1)
		row = &d.rows[i] // ensureRow may have moved the rows
		next := &d.rows[i+1]
		size := bucketSize(i)
		mu1 := row.total[0] / size
		mu2 := row.total[1] / size
		diff := mu1 - mu2
		merged := row.variance[0] + row.variance[1] + size*size*diff*diff/(2*size)
		next.push(row.total[0]+row.total[1], merged)
		row.dropOldest(2)
		if next.n <= d.cfg.MaxBuckets {
			return
		}
	}
}

func bucketSize(row int) float64 { return float64(uint64(1) << uint(row)) }

// deleteOldest removes the oldest bucket from the window and returns its size.
func (d *ADWIN) deleteOldest() float64 {
	last := d.nRows - 1
	row := &d.rows[last]
	n := bucketSize(last)
	u := row.total[0]
	mu := u / n
	v := row.variance[0]
	d.width -= n
	d.total -= u
	muWindow := d.total / d.width
	diff := mu - muWindow
	d.variance -= v + n*d.width*diff*diff/(n+d.width)
	row.dropOldest(1)
	// With MaxBuckets 1 a merge empties a row, so the rows below the
	// oldest one may be empty too: drop every empty row at the old end, so
	// that rows[nRows-1] always holds the oldest bucket.
	for d.nRows > 1 && d.rows[d.nRows-1].n == 0 {
		d.nRows--
	}
	return n
}

// detectChange scans the cut points from the oldest bucket to the newest, as
// River does, and drops the oldest bucket for as long as some cut separates
// two sub-windows whose means differ by more than ε_cut.
func (d *ADWIN) detectChange() bool {
	d.tick++
	if d.tick%d.cfg.Clock != 0 || d.width <= float64(d.cfg.GracePeriod) {
		return false
	}
	minLen := float64(d.cfg.MinWindowLength)
	changed := false
	for reduce := true; reduce; {
		reduce = false
		// Both terms depend only on the window, not on the cut point.
		deltaPrime := math.Log(2 * math.Log(d.width) / d.cfg.Delta)
		varianceInWindow := d.variance / d.width
		n0, n1 := 0.0, d.width
		u0, u1 := 0.0, d.total
	scan:
		for i := d.nRows - 1; i >= 0; i-- {
			row := &d.rows[i]
			size := bucketSize(i)
			for k := 0; k < row.n; k++ {
				n0 += size
				n1 -= size
				u0 += row.total[k]
				u1 -= row.total[k]
				if i == 0 && k == row.n-1 {
					break scan // the cut after the newest value leaves W1 empty
				}
				if n1 >= minLen && n0 >= minLen && d.cutHolds(n0, n1, u0/n0-u1/n1, deltaPrime, varianceInWindow) {
					reduce, changed = true, true
					if d.width > 0 {
						d.deleteOldest()
						break scan
					}
				}
			}
		}
	}
	return changed
}

// cutHolds reports whether |meanDiff| exceeds ε_cut for sub-windows of n0 and
// n1, given δ' = ln(2 ln(W)/δ) and the window's variance.
func (d *ADWIN) cutHolds(n0, n1, meanDiff, deltaPrime, varianceInWindow float64) bool {
	minLen := float64(d.cfg.MinWindowLength)
	mRecip := 1/(n0-minLen+1) + 1/(n1-minLen+1)
	eps := math.Sqrt(2*mRecip*varianceInWindow*deltaPrime) + 2.0/3.0*deltaPrime*mRecip
	return math.Abs(meanDiff) > eps
}
