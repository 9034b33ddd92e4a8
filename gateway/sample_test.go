package gateway

import (
	"fmt"
	"strings"
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
	if lines > 2+int(time.Since(deadline.Add(-5*time.Second))/unmatchedLogEvery) || lines > 20 {
		t.Fatalf("%d lines for %d unmatched messages", lines, n)
	}
	w := h.do("GET", "/metrics", "", nil, nil)
	if !strings.Contains(w.Body.String(), `mogate_messages_total{outcome="unmatched",provider="twilio"} 100`) {
		t.Fatalf("metrics:\n%s", grepLines(w.Body.String(), "mogate_messages_total"))
	}
}
