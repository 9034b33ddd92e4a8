package gateway

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
)

// Every final status other than verified says why (docs/api.md), in GET,
// in the cancel answer and on the event stream; pending and verified have
// reason null.
func TestReasonOnFinalStatuses(t *testing.T) {
	h := newHarness(t, testYAML)
	superseded := h.mustCreate(`{"number": "+14155550123"}`)["id"].(string)
	h.mustCreate(`{"number": "+14155550123"}`)
	cancelled := h.mustCreate(`{"number": "+14155550124"}`)["id"].(string)
	if w := h.do("POST", "/v1/verifications/"+cancelled+"/cancel", shopKey, nil, nil); !strings.Contains(w.Body.String(), `"reason":"cancelled_by_api"`) {
		t.Fatalf("cancel answer = %s", w.Body)
	}
	failed := h.mustCreate(`{"number": "+14155550125"}`)["id"].(string)
	for i := range 3 {
		h.send(h.signed("twilio", adapters.Inbound{MessageID: "SMr" + strconv.Itoa(i), From: "+14155550125", To: "+14155550100", Text: "000000"}))
	}
	v := h.mustCreate(`{"number": "+14155550126"}`)
	verified := v["id"].(string)
	h.send(h.signed("twilio", adapters.Inbound{MessageID: "SMv", From: "+14155550126", To: "+14155550100", Text: v["code"].(string)}))
	pending := h.mustCreate(`{"number": "+14155550127", "ttl_seconds": 3600}`)["id"].(string)
	expired := h.mustCreate(`{"number": "+14155550128", "ttl_seconds": 60}`)["id"].(string)
	h.advance(2 * time.Minute)

	want := map[string][2]any{
		superseded: {"cancelled", "superseded"}, cancelled: {"cancelled", "cancelled_by_api"},
		failed: {"failed", "max_attempts"}, expired: {"expired", "expired"},
		verified: {"verified", nil}, pending: {"pending", nil},
	}
	for id, w := range want {
		got := h.get(id)
		if got["status"] != w[0] || got["reason"] != w[1] {
			t.Errorf("%v: status %v reason %v", w, got["status"], got["reason"])
		}
		if _, ok := got["reason"]; !ok {
			t.Errorf("%v: no reason field", w)
		}
		if w[0] == "pending" {
			continue
		}
		// The event stream of a final session sends its status once.
		body := h.do("GET", "/v1/verifications/"+id+"/events", shopKey, nil, nil).Body.String()
		data, _, _ := strings.Cut(strings.SplitN(body, "data: ", 2)[1], "\n")
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev["status"] != w[0] || ev["reason"] != w[1] {
			t.Errorf("%v: stream %s", w, body)
		}
	}
}

// The app's events carry the reason too: a superseded session's event is
// verification.cancelled with reason superseded.
func TestReasonInEvents(t *testing.T) {
	rcv := newReceiver(t)
	h, _ := outboxHarness(t, rcv.srv.URL, OutboxOptions{BaseDelay: 10 * time.Millisecond})
	old := h.mustCreate(`{"number": "+14155550123"}`)["id"].(string)
	h.mustCreate(`{"number": "+14155550123"}`)
	eventually(t, "the superseded event", func() bool { return len(rcv.accepted()) == 1 })
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ID, Status, Reason string
		} `json:"data"`
	}
	if err := json.Unmarshal(rcv.accepted()[0].body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "verification.cancelled" || ev.Data.ID != old || ev.Data.Status != "cancelled" || ev.Data.Reason != "superseded" {
		t.Fatalf("event = %s", rcv.accepted()[0].body)
	}
}
