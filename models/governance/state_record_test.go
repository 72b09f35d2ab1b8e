package governance

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestStateRecordRoundTrip(t *testing.T) {
	rec := &StateRecord{Model: "fraud", Version: "12", Writer: "host:42:ab", Epoch: 7, Seq: 3, Learned: 123456,
		PublishedAt: time.UnixMilli(1_767_000_000_123), State: []byte("DLLN snapshot bytes"),
		Positions: Positions{Labels: map[int32]int64{0: 10, 5: 99, 2: 0}, Early: "1767000000000-4"}}
	data, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeStateRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.PublishedAt.Equal(rec.PublishedAt) {
		t.Errorf("published %v, want %v", got.PublishedAt, rec.PublishedAt)
	}
	got.PublishedAt = rec.PublishedAt
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("decoded %+v, want %+v", got, rec)
	}
	again, _ := rec.Encode()
	if string(again) != string(data) {
		t.Error("encoding is not deterministic")
	}
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x40
		if _, err := DecodeStateRecord(bad); !errors.Is(err, ErrBadStateRecord) {
			t.Fatalf("byte %d flipped: %v, want ErrBadStateRecord", i, err)
		}
	}
	for _, n := range []int{0, 4, 20, len(data) - 1} {
		if _, err := DecodeStateRecord(data[:n]); !errors.Is(err, ErrBadStateRecord) {
			t.Errorf("truncated to %d bytes: %v, want ErrBadStateRecord", n, err)
		}
	}
}

func TestMarkOrder(t *testing.T) {
	for _, tc := range []struct {
		a, b Mark
		want bool
	}{
		{Mark{Epoch: 2, Seq: 1}, Mark{Epoch: 1, Seq: 9}, true},
		{Mark{Epoch: 1, Seq: 9}, Mark{Epoch: 2, Seq: 1}, false},
		{Mark{Epoch: 2, Seq: 2}, Mark{Epoch: 2, Seq: 1}, true},
		{Mark{Epoch: 2, Seq: 2, Learned: 1}, Mark{Epoch: 2, Seq: 2, Learned: 9}, false},
		{Mark{Epoch: 1, Seq: 1}, Mark{}, true},
	} {
		if got := tc.a.Newer(tc.b); got != tc.want {
			t.Errorf("%+v.Newer(%+v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
