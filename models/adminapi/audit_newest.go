package adminapi

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/driftline/driftline/models/registry"
)

// ReadAuditNewest reads the newest limit audit events of reg after since
// ("0": any), of model when it is not empty, as GET
// /api/v1/audit?order=newest answers: oldest first, like ReadAudit. It
// scans back from the newest event, at most 10,000 entries per call. Next
// is the newest event's ID (or since when there is none), so that a
// follower reads on from there.
func ReadAuditNewest(ctx context.Context, reg *registry.Registry, model, since string, limit int) (AuditPage, error) {
	page := AuditPage{Events: []registry.Event{}, Next: since}
	sinceID, hasSince := parseStreamID(since)
	before := ""
	for scanned := 0; scanned < auditScanMax && len(page.Events) < limit; {
		want := limit - len(page.Events)
		if model != "" {
			want = min(AuditPageMax, auditScanMax-scanned)
		}
		evs, err := reg.ReadAuditBefore(ctx, before, int64(want))
		if err != nil {
			return AuditPage{}, err
		}
		if len(evs) == 0 {
			break
		}
		done := false
		for _, e := range evs {
			if id, ok := parseStreamID(e.ID); hasSince && ok && !id.after(sinceID) {
				done = true
				break
			}
			scanned++
			if before == "" && scanned == 1 {
				page.Next = e.ID
			}
			before = e.ID
			if model == "" || e.Model == model {
				page.Events = append(page.Events, e)
				if len(page.Events) == limit {
					break
				}
			}
		}
		if done {
			break
		}
	}
	slices.Reverse(page.Events)
	return page, nil
}

// streamID is a parsed audit event id; ms alone has seq 0.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	ms, seq, hasSeq := strings.Cut(s, "-")
	var id streamID
	var err error
	if id.ms, err = strconv.ParseUint(ms, 10, 64); err != nil {
		return streamID{}, false
	}
	if hasSeq {
		if id.seq, err = strconv.ParseUint(seq, 10, 64); err != nil {
			return streamID{}, false
		}
	}
	return id, true
}

func (a streamID) after(b streamID) bool { return a.ms > b.ms || a.ms == b.ms && a.seq > b.seq }
