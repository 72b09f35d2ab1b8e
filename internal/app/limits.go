package app

import (
	"context"
	"time"
)

// learnRecordLimitsTimeout bounds the look-up of the output topics'
// max.message.bytes.
const learnRecordLimitsTimeout = 10 * time.Second

// learnRecordLimits reads, once, the record limits of the topics the data
// plane writes (predictions, DLQ, shadow predictions) and of the labels
// plane's DLQ, so that no record the pipeline writes is refused as too
// large (pipeline.RunnerConfig.RecordLimit). Open calls it when the
// cluster answers, Run otherwise; a limit that can't be read falls back to
// the broker's default, which connectors/kafka logs.
func (a *App) learnRecordLimits(ctx context.Context) {
	a.limitsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, learnRecordLimitsTimeout)
		defer cancel()
		topics := []string{a.spec.Topics.Predictions, a.spec.Topics.DLQ}
		if r := a.spec.Rollout; r != nil && r.ShadowTopic != "" {
			topics = append(topics, r.ShadowTopic)
		}
		limits := a.kc.LearnRecordLimits(ctx, topics...)
		if a.labels != nil && a.labels.kc != nil { // none in log mode: the data plane's limits serve it
			a.labels.kc.LearnRecordLimits(ctx, a.spec.Topics.DLQ)
		}
		a.log.Info("output record limits (max.message.bytes)", "bytes", limits)
	})
}
