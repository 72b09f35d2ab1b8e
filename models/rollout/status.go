package rollout

import "time"

// Status is what a model's governor knows of its rollout, for the
// status page, `models show` and the rollout metrics. Only the instance
// that holds the model's governor lease decides, so only its status is
// live: on other instances Leader is false and the rest is zero.
type Status struct {
	Model  string `json:"model"`
	Leader bool   `json:"leader"`
	Holder string `json:"holder,omitempty"`
	// Candidate is the version under rollout (0: none); ChampionVersion is
	// the version it is measured against.
	Candidate       int64  `json:"candidate,omitempty"`
	ChampionVersion string `json:"champion_version,omitempty"`
	// Phase, Step (-1 outside the canary phase), Steps and Percent are the
	// controller's: Percent is the share of keys the candidate serves.
	Phase   Phase `json:"phase,omitempty"`
	Step    int   `json:"step"`
	Steps   []int `json:"steps,omitempty"`
	Percent int   `json:"percent"`
	Paused  bool  `json:"paused"`
	// StepDone of StepNeeded candidate outcomes are in for the current
	// step (or the bake, when promoted).
	StepDone          int64 `json:"step_done"`
	StepNeeded        int64 `json:"step_needed"`
	Failures          int   `json:"failures"`
	ConsecutiveErrors int   `json:"consecutive_errors"`
	// Gate is the gate in force (an admin's policy or the spec's).
	Gate *Gate `json:"gate,omitempty"`
	// Evidence is the last comparison of the two arms: the metric, both
	// arms' values and sample counts, and the bounds of the improvement
	// (nil until both arms have the gate's minimum samples).
	Evidence *Measurement `json:"evidence,omitempty"`
	// CandidateN and ChampionN are the outcomes each arm has so far, also
	// before Evidence exists.
	CandidateN int64 `json:"candidate_n"`
	ChampionN  int64 `json:"champion_n"`
	// LastDecision is the last decision's what and why.
	LastWhat   string    `json:"last_what,omitempty"`
	LastReason string    `json:"last_reason,omitempty"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
}
