package adminapi

// The status page's read-only endpoints (viewer):
//
//	GET /api/v1/status                 throughput, lag and DLQ rate per reason, per partition
//	GET /api/v1/history                the bounded history of rates and prequential metrics per version
//	GET /api/v1/drift                  the drift monitor's per-subject histograms and tests, and its alerts
//	GET /api/v1/models/{name}/rollout  the governor's rollout status: phase, step, progress, gate, evidence
//
// They are served when Config.Status is set. With Config.PublicStatus these,
// and the other read calls but snapshot downloads, answer without a token,
// as the viewer "anonymous".

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/detectors/distribution"
	"github.com/driftline/driftline/models/rollout"
)

// StatusSource is the live state of the pipeline behind the admin API, as
// the status page shows it. internal/app implements it; every method is
// called from HTTP handlers, concurrently with the pipeline.
type StatusSource interface {
	// Pipeline returns the data plane's totals, rates, lag per partition and
	// DLQ rates per reason.
	Pipeline() PipelineStatus
	// History returns the recent samples, oldest first.
	History() History
	// Drift returns the drift monitor's report and the alerts raised; ok is
	// false without a drift monitor.
	Drift() (report distribution.Report, alerts []alert.Alert, ok bool)
	// Rollout returns the rollout status of model's governor on this
	// instance; ok is false when this instance runs no governor of model.
	Rollout(model string) (st rollout.Status, ok bool)
}

// Number is a float64 that encodes NaN and ±Inf (a metric with no data
// yet) as JSON null.
type Number float64

// MarshalJSON writes n, or null when it is not finite.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads a number, or null as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}

// PipelineStatus is GET /api/v1/status. Rates are per second over the
// last sample interval.
type PipelineStatus struct {
	Pipeline   string    `json:"pipeline"`
	InputTopic string    `json:"input_topic"`
	Model      string    `json:"model"`
	Champion   string    `json:"champion_version"`
	Ready      bool      `json:"ready"`
	StartedAt  time.Time `json:"started_at"`
	SampledAt  time.Time `json:"sampled_at,omitzero"`
	// Totals since start: events taken in, predictions, DLQ records,
	// duplicates dropped, labels joined.
	In         int64 `json:"in"`
	Out        int64 `json:"out"`
	DLQ        int64 `json:"dlq"`
	Duplicates int64 `json:"duplicates"`
	Labels     int64 `json:"labels"`
	// Rates per second.
	InPerS         Number `json:"in_per_s"`
	OutPerS        Number `json:"out_per_s"`
	DLQPerS        Number `json:"dlq_per_s"`
	DuplicatesPerS Number `json:"duplicates_per_s"`
	// Lag is the sum of the partitions' lag.
	Lag        int64             `json:"lag"`
	Partitions []PartitionStatus `json:"partitions"`
	DLQReasons []DLQReason       `json:"dlq_reasons"`
}

// PartitionStatus is one assigned input partition.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// In counts the events this instance took in from it; InPerS is its
	// rate.
	In     int64  `json:"in"`
	InPerS Number `json:"in_per_s"`
	// Lag is the records between the last processed offset and the high
	// watermark (driftline_kafka_consumer_lag_records).
	Lag int64 `json:"lag"`
}

// DLQReason is the DLQ records of one reason code.
type DLQReason struct {
	Reason string `json:"reason"`
	Total  int64  `json:"total"`
	PerS   Number `json:"per_s"`
}

// History is GET /api/v1/history: samples taken every Interval, at most
// Capacity of them, oldest first.
type History struct {
	IntervalS float64         `json:"interval_s"`
	Capacity  int             `json:"capacity"`
	Points    []HistoryPoint  `json:"points"`
	Versions  []VersionSeries `json:"versions"`
}

// HistoryPoint is one sample of the data plane's rates.
type HistoryPoint struct {
	At             time.Time `json:"at"`
	InPerS         Number    `json:"in_per_s"`
	OutPerS        Number    `json:"out_per_s"`
	DLQPerS        Number    `json:"dlq_per_s"`
	DuplicatesPerS Number    `json:"duplicates_per_s"`
	Lag            int64     `json:"lag"`
}

// VersionSeries is one model version's windowed prequential metrics over
// time, one point per sample while it served and had labels.
type VersionSeries struct {
	Model   string         `json:"model"`
	Version string         `json:"version"`
	Points  []VersionPoint `json:"points"`
}

// VersionPoint is one sample of a version's windowed prequential metrics.
type VersionPoint struct {
	At       time.Time `json:"at"`
	Labels   int64     `json:"labels"`
	Accuracy Number    `json:"accuracy"`
	LogLoss  Number    `json:"logloss"`
}

// DriftView is GET /api/v1/drift.
type DriftView struct {
	Report distribution.Report `json:"report"`
	// Alerts are the alerts raised, newest last (at most the last 500).
	Alerts []alert.Alert `json:"alerts"`
}

// maxDriftAlerts bounds the alerts GET /api/v1/drift returns.
const maxDriftAlerts = 500

func (a *API) routeStatus() {
	a.route("GET /api/v1/status", RoleViewer, func(w http.ResponseWriter, _ *http.Request, _ Identity) {
		writeValue(w, a.status.Pipeline())
	})
	a.route("GET /api/v1/history", RoleViewer, func(w http.ResponseWriter, _ *http.Request, _ Identity) {
		writeValue(w, a.status.History())
	})
	a.route("GET /api/v1/drift", RoleViewer, func(w http.ResponseWriter, _ *http.Request, _ Identity) {
		rep, alerts, ok := a.status.Drift()
		if !ok {
			writeError(w, http.StatusNotFound, "no drift monitor: the spec has no alerts topic")
			return
		}
		if len(alerts) > maxDriftAlerts {
			alerts = alerts[len(alerts)-maxDriftAlerts:]
		}
		if alerts == nil {
			alerts = []alert.Alert{}
		}
		writeValue(w, DriftView{Report: rep, Alerts: alerts})
	})
	a.route("GET /api/v1/models/{name}/rollout", RoleViewer, func(w http.ResponseWriter, r *http.Request, _ Identity) {
		name, err := modelName(r)
		if err != nil {
			a.fail(w, err)
			return
		}
		st, ok := a.status.Rollout(name)
		if !ok {
			writeError(w, http.StatusNotFound, "this instance runs no governor of model "+name)
			return
		}
		writeValue(w, st)
	})
}

// writeValue answers v as JSON, encoded before the status is written, so a
// value that does not encode is a clean 500.
func writeValue(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// anonymous is who a tokenless read acts as under Config.PublicStatus.
var anonymous = Identity{Name: "anonymous", Role: RoleViewer}

// publicPatterns are the routes that answer without a token under
// Config.PublicStatus: every read call but token lists and artifact
// downloads.
var publicPatterns = map[string]bool{
	"GET /api/v1/whoami": true, "GET /api/v1/models": true, "GET /api/v1/models/{name}": true,
	"GET /api/v1/models/{name}/policy": true, "GET /api/v1/audit": true, "GET /api/v1/status": true,
	"GET /api/v1/history": true, "GET /api/v1/drift": true, "GET /api/v1/models/{name}/rollout": true,
}

// caller authenticates r for a route of pattern: the bearer token's
// identity, or anonymous for a tokenless public read. It answers 401
// itself when there is neither.
func (a *API) caller(w http.ResponseWriter, r *http.Request, pattern string) (Identity, bool) {
	if a.public && publicPatterns[pattern] && r.Header.Get("Authorization") == "" {
		return anonymous, true
	}
	return a.authenticate(w, r)
}
