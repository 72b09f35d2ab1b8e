package streams_test

import (
	"fmt"
	"time"

	"github.com/driftline/driftline/testkit/streams"
)

// A SEA stream that switches from variant 0 (θ = 8) to variant 2 (θ = 7) at event 1000.
func ExampleNewGenerator() {
	g, err := streams.NewGenerator(streams.Config{
		Concept: streams.ConceptSEA,
		Seed:    1,
		Drift:   streams.Drift{Kind: streams.DriftAbrupt, Position: 1000},
		Step:    time.Second,
	})
	if err != nil {
		panic(err)
	}
	var e streams.Event
	g.Next(&e)
	fmt.Println(string(streams.AppendJSON(nil, &e)))
	fmt.Println(string(streams.AppendLabelJSON(nil, &e)))
	g.Next(&e)
	fmt.Println(e.ID, e.Time.Format(time.RFC3339Nano), e.UserID, e.Phone)
	// Output:
	// {"event_id":"e-1-0","ts":"2025-01-01T00:00:00Z","user_id":"u-005274","email":"user5274@example.com","phone":"+1-555-127-7649","country":"IN","device":"web","channel":"referral","f0":3.028404431226679,"f1":7.856690964148456,"f2":5.517885287310524,"f3":9.951616986995091,"f4":5.261201238153019,"f5":1.5995217318609467,"f6":5.385335187264843,"f7":0.7363173134555367,"f8":8.967217494956504,"f9":6.264052221066284}
	// {"event_id":"e-1-0","label":0}
	// e-1-1 2025-01-01T00:00:01Z u-000577 +1-555-107-0528
}
