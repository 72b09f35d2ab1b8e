package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadTxnLog returns aborted and committed records with their markers, and
// a plain record as non-transactional.
func TestReadTxnLogTellsCommittedFromAborted(t *testing.T) {
	b := StartKfake(t)
	b.CreateTopic(t, "txnlog", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txn := b.Client(t, kgo.TransactionalID("txnlog"), kgo.DefaultProduceTopic("txnlog"))
	for _, tc := range []struct {
		value  string
		commit kgo.TransactionEndTry
	}{{"aborted", kgo.TryAbort}, {"committed", kgo.TryCommit}} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, kgo.StringRecord(tc.value)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, tc.commit); err != nil {
			t.Fatal(err)
		}
	}
	plain := b.Client(t, kgo.DefaultProduceTopic("txnlog"))
	if err := plain.ProduceSync(ctx, kgo.StringRecord("plain")).FirstErr(); err != nil {
		t.Fatal(err)
	}

	recs, err := b.ReadTxnLog(t, ctx, "txnlog")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("read %d records, want 3: %v", len(recs), recs)
	}
	want := []struct {
		value, marker string
		committed     bool
	}{{"aborted", "abort", false}, {"committed", "commit", true}, {"plain", "", true}}
	for i, w := range want {
		r := recs[i]
		if string(r.Value) != w.value || r.Marker != w.marker || r.Committed() != w.committed {
			t.Errorf("record %d: %s value %q committed %v; want value %q marker %q committed %v", i, r.String(), r.Value, r.Committed(), w.value, w.marker, w.committed)
		}
		if w.marker != "" && (r.MarkerOffset <= r.Offset || !r.Transactional || r.ProducerID < 0) {
			t.Errorf("record %d: %s: want a transactional record with a marker after it", i, r.String())
		}
	}
	t.Logf("%s; %s; %s", recs[0].String(), recs[1].String(), recs[2].String())
}
