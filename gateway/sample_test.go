package gateway

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
)

// TestUnmatchedLogSampled: a flood of unmatched messages writes a handful
// of lines whose counts add up to every message; the metric counts each.
func TestUnmatchedLogSampled(t *testing.T) {
	saved := unmatchedLogEvery
	t.Cleanup(func() { unmatchedLogEvery = saved })
	unmatchedLogEvery = 200 * time.Millisecond
	h := newHarness(t, testYAML)
	const n = 100
	start := time.Now() // lines are written during the loop too
	for i := range n {
		r := h.signed("twilio", adapters.Inbound{MessageID: fmt.Sprintf("SM%032d", i), From: fmt.Sprintf("+1415555%04d", 3000+i), To: "+14155550100", Text: "hello"})
		if w := h.send(r); w.Code != 200 {
			t.Fatalf("webhook %d = %d %s", i, w.Code, w.Body)
		}
	}
	counted := func() (lines, total int) {
		for _, msg := range []string{"unmatched message", "unmatched messages not logged"} {
			for _, l := range logLines(t, h.logs.String(), msg) {
				lines++
				if l["provider"] != "twilio" {
					t.Fatalf("line without its entry: %v", l)
				}
				if msg == "unmatched message" {
					total++
				}
				if s, ok := l["suppressed"].(float64); ok {
					total += int(s)
				}
			}
		}
		return lines, total
	}
	deadline := time.Now().Add(5 * time.Second)
	lines, total := counted()
	for total < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		lines, total = counted()
	}
	if total != n {
		t.Fatalf("the log accounts for %d messages of %d", total, n)
	}
	// One line per 200 ms at most, plus the first.
	if lines > 2+int(time.Since(start)/unmatchedLogEvery) {
		t.Fatalf("%d lines for %d unmatched messages", lines, n)
	}
	w := h.do("GET", "/metrics", "", nil, nil)
	if !strings.Contains(w.Body.String(), `mogate_messages_total{channel="sms",outcome="unmatched",provider="twilio"} 100`) {
		t.Fatalf("metrics:\n%s", grepLines(w.Body.String(), "mogate_messages_total"))
	}
}

// TestLogSamplerLateTimer: an interval's timer that fires while a line is
// being let through (so it gets the lock after that line, and after a new
// interval's count and timer) reports nothing and leaves the new timer to
// report the new count, once.
func TestLogSamplerLateTimer(t *testing.T) {
	var mu sync.Mutex
	var flushed []int
	l := newLogSampler(time.Second, func(_ string, n int) {
		mu.Lock()
		defer mu.Unlock()
		flushed = append(flushed, n)
	})
	now := time.Unix(1000, 0)
	var fire []func() // the timers' functions, fired by hand
	l.now = func() time.Time { return now }
	l.after = func(_ time.Duration, f func()) *time.Timer {
		fire = append(fire, f)
		return time.AfterFunc(time.Hour, func() {}) // stopped, never fires
	}
	allow := func(want bool, wantSuppressed int) {
		t.Helper()
		if ok, n := l.allow("k"); ok != want || n != wantSuppressed {
			t.Fatalf("allow at %v = %v %d, want %v %d", now, ok, n, want, wantSuppressed)
		}
	}

	allow(true, 0)
	allow(false, 0) // suppressed; timer 0 will report it
	now = now.Add(time.Second)
	allow(true, 1) // timer 0 is due but has not got the lock yet
	now = now.Add(100 * time.Millisecond)
	allow(false, 0) // suppressed; timer 1
	if len(fire) != 2 {
		t.Fatalf("%d timers, want 2", len(fire))
	}
	fire[0]() // late: its interval's count went out with the last line
	if len(flushed) != 0 {
		t.Fatalf("the late timer reported %v", flushed)
	}
	allow(false, 0) // still in the interval: counted, no new timer
	if len(fire) != 2 {
		t.Fatalf("the late timer left the interval without its timer: %d timers", len(fire))
	}
	now = now.Add(900 * time.Millisecond)
	fire[1]()
	if len(flushed) != 1 || flushed[0] != 2 {
		t.Fatalf("reports = %v, want one of 2", flushed)
	}
}
