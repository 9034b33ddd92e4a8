package gateway

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
)

// scrapeValue returns the value of an unlabelled series in a /metrics
// scrape, or "" when the scrape does not have it.
func (h *harness) scrapeValue(name string) string {
	h.t.Helper()
	sc := bufio.NewScanner(strings.NewReader(h.do("GET", "/metrics", "", nil, nil).Body.String()))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// TestProcessedIDsMetric: mogate_processed_ids counts the processed message
// ids and spent Plivo nonces remembered (store: memory); a redelivery adds
// nothing, and ids leave once the retention has passed.
func TestProcessedIDsMetric(t *testing.T) {
	h := newHarness(t, testYAML)
	if got := h.scrapeValue("mogate_processed_ids"); got != "0" {
		t.Fatalf("mogate_processed_ids before any message = %q, want 0", got)
	}
	sms := h.signed("twilio", adapters.Inbound{MessageID: "SM1", From: "+14155550123", To: "+14155550100", Text: "hello"})
	h.send(sms)
	h.send(sms) // a redelivery
	if got := h.scrapeValue("mogate_processed_ids"); got != "1" {
		t.Fatalf("mogate_processed_ids after one message = %q, want 1", got)
	}
	// A Plivo request: its message id and its V2 nonce.
	h.send(h.signed("plivo", adapters.Inbound{From: "+33622222222", To: "+33757000000", Text: "hello", MessageID: "uuid-1"}))
	if got := h.scrapeValue("mogate_processed_ids"); got != "3" {
		t.Fatalf("mogate_processed_ids after a Plivo message = %q, want 3", got)
	}
	h.advance(25 * time.Hour) // retention: 24h
	h.send(h.signed("twilio", adapters.Inbound{MessageID: "SM2", From: "+14155550123", To: "+14155550100", Text: "hello"}))
	if got := h.scrapeValue("mogate_processed_ids"); got != "1" {
		t.Fatalf("mogate_processed_ids past the retention = %q, want 1", got)
	}
}
