package matcher

import (
	"testing"
	"time"
)

func TestReason(t *testing.T) {
	cases := []struct {
		st     Status
		stored string
		want   string
	}{
		{Pending, "", ""},
		{Verified, "", ""},
		{Expired, "", ReasonExpired}, // written before expired had a reason
		{Failed, "", ReasonMaxAttempts},
		{Cancelled, "cancelled", ReasonCancelledByAPI}, // the old word
		{Cancelled, ReasonCancelledByAPI, ReasonCancelledByAPI},
		{Cancelled, ReasonSuperseded, ReasonSuperseded},
	}
	for _, tc := range cases {
		if got := Reason(tc.st, tc.stored); got != tc.want {
			t.Errorf("Reason(%v, %q) = %q, want %q", tc.st, tc.stored, got, tc.want)
		}
		if got := reasons[reasonCode(tc.st, tc.stored)]; got != tc.want {
			t.Errorf("reasonCode(%v, %q) names %q, want %q", tc.st, tc.stored, got, tc.want)
		}
	}
}

// An OpCancel record written before the reasons grew says "cancelled": it
// replays as cancelled_by_api, and a snapshot keeps that.
func TestOldCancelRecordReplays(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	s, _, err := m.Create(CreateRequest{Key: "k", Number: alice, Code: "482913", To: to, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The bytes an older build journaled for a cancel through the API.
	if err := m.journal(Record{Op: OpCancel, At: c.Now(), ID: s.ID, Reason: "cancelled"}).Wait(); err != nil {
		t.Fatal(err)
	}
	m2 := openDurable(t, dir, c) // no Close: replay from the log
	got, err := m2.Get(s.ID)
	if err != nil || got.Status != Cancelled || got.Reason != ReasonCancelledByAPI {
		t.Fatalf("replayed = %+v %v", got, err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	m3 := openDurable(t, dir, c) // from the snapshot Close took
	if got, err := m3.Get(s.ID); err != nil || got.Reason != ReasonCancelledByAPI {
		t.Fatalf("from snapshot = %+v %v", got, err)
	}
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
}
