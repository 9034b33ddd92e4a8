package memstore

import (
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

func TestReason(t *testing.T) {
	cases := []struct {
		st     matcher.Status
		stored string
		want   string
	}{
		{matcher.Pending, "", ""},
		{matcher.Verified, "", ""},
		{matcher.Expired, "", matcher.ReasonExpired}, // written before expired had a reason
		{matcher.Failed, "", matcher.ReasonMaxAttempts},
		{matcher.Cancelled, "cancelled", matcher.ReasonCancelledByAPI}, // the old word
		{matcher.Cancelled, matcher.ReasonCancelledByAPI, matcher.ReasonCancelledByAPI},
		{matcher.Cancelled, matcher.ReasonSuperseded, matcher.ReasonSuperseded},
	}
	for _, tc := range cases {
		if got := matcher.Reason(tc.st, tc.stored); got != tc.want {
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
	s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: alice, Code: "482913", To: to, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The bytes an older build journaled for a cancel through the API.
	if err := m.journal(nil, Record{Op: OpCancel, At: c.Now(), ID: s.ID, Reason: "cancelled"}).Wait(); err != nil {
		t.Fatal(err)
	}
	m2 := openDurable(t, dir, c) // no Close: replay from the log
	got, err := m2.get(s.ID)
	if err != nil || got.Status != matcher.Cancelled || got.Reason != matcher.ReasonCancelledByAPI {
		t.Fatalf("replayed = %+v %v", got, err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	m3 := openDurable(t, dir, c) // from the snapshot Close took
	if got, err := m3.get(s.ID); err != nil || got.Reason != matcher.ReasonCancelledByAPI {
		t.Fatalf("from snapshot = %+v %v", got, err)
	}
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFinishReason: the reasons finish looks up are reasonCode's, for
// every status and one past them.
func TestFinishReason(t *testing.T) {
	for st := matcher.Pending; st <= matcher.Failed+1; st++ {
		if got, want := finishReason(st), reasonCode(st, ""); got != want {
			t.Errorf("status %d: reason %d, want %d", st, got, want)
		}
	}
}
