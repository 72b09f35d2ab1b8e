package main

import (
	"context"
	"fmt"
	"io"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/registry"
)

// rolloutTail prints the governance loop's new audit events as the demo
// runs, one line each.
type rolloutTail struct {
	reg    *registry.Registry
	model  string
	w      io.Writer
	cursor string
}

// print writes the events since the last call; p's status line is ended
// first on a terminal.
func (t *rolloutTail) print(ctx context.Context, p *progress) {
	evs, err := t.reg.ReadAudit(ctx, t.cursor, 1000)
	if err != nil || len(evs) == 0 {
		return
	}
	t.cursor = evs[len(evs)-1].ID
	for _, e := range evs {
		if e.Model != t.model || !app.IsRolloutStory(e) {
			continue
		}
		p.done()
		fmt.Fprintf(t.w, "ROLLOUT %s\n", app.DescribeRolloutEvent(e))
	}
}
