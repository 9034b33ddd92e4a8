package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mogate/mogate/adapters"
)

// TestTenantIsolation: key B's create for the same sender and number
// cancelled key A's session, and 409 code_in_use told B which capture codes
// A had pending. Now B's session coexists with A's, and a capture-mode
// create cannot choose a code at all.
func TestTenantIsolation(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		const sender, to = "+14155550123", "+14155550100"
		a := h.mustCreate(`{"number":"` + sender + `","to":"` + to + `","code":"111111"}`)
		code, b := h.create(otherKey, `{"number":"`+sender+`","to":"`+to+`","code":"222222"}`, nil)
		if code != 201 {
			t.Fatalf("key b create = %d %v", code, b)
		}
		if got := h.get(a["id"].(string)); got["status"] != "pending" {
			t.Fatalf("key b's create touched key a's session: %v", got)
		}
		h.send(h.signed("twilio", adapters.Inbound{From: sender, To: to, Text: "111111"}))
		if got := h.get(a["id"].(string)); got["status"] != "verified" {
			t.Fatalf("a = %v", got)
		}
		w := h.do("GET", "/v1/verifications/"+b["id"].(string), otherKey, nil, nil)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"status":"pending"`) {
			t.Fatalf("b after a verified = %d %s", w.Code, w.Body)
		}
		// Key a's own second session still supersedes its first.
		a1 := h.mustCreate(`{"number":"` + sender + `","to":"` + to + `"}`)
		h.mustCreate(`{"number":"` + sender + `","to":"` + to + `"}`)
		if got := h.get(a1["id"].(string)); got["status"] != "cancelled" {
			t.Fatalf("own supersede = %v", got)
		}

		// Capture mode: a chosen code is refused whatever it is, so no answer
		// depends on another key's pending codes.
		c := h.mustCreate(`{"to":"` + to + `"}`)
		for _, key := range []string{shopKey, otherKey} {
			for _, body := range []string{`{"to":"` + to + `","code":"` + c["code"].(string) + `"}`, `{"to":"` + to + `","code":"999999"}`} {
				if code, out := h.create(key, body, nil); code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(out), "code_not_allowed") {
					t.Fatalf("capture create with a code = %d %v", code, out)
				}
			}
		}
	})
}

// TestCaptureGuessesLimit: limits.capture_guesses_per_sender_per_hour
// counts every SMS that reaches capture matching, hits included.
func TestCaptureGuessesLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		y := strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5", "unmatched_per_sender_per_hour: 0\n  capture_guesses_per_sender_per_hour: 3", 1)
		h := st.harness(t, y)
		const guesser, to = "+33698765432", "+33757000000"
		var sessions []map[string]any
		for range 4 {
			sessions = append(sessions, h.mustCreate(`{"to":"`+to+`"}`))
		}
		// Three guesses: two hits and a miss, all counted.
		for i, text := range []string{sessions[0]["code"].(string), sessions[1]["code"].(string), "000000"} {
			if w := h.send(h.signed("plivo", adapters.Inbound{From: guesser, To: to, Text: text})); w.Code != 200 {
				t.Fatalf("sms %d = %d", i, w.Code)
			}
		}
		h.send(h.signed("plivo", adapters.Inbound{From: guesser, To: to, Text: sessions[2]["code"].(string)}))
		if got := h.get(sessions[2]["id"].(string)); got["status"] != "pending" {
			t.Fatalf("4th guess verified: %v", got)
		}
		h.send(h.signed("plivo", adapters.Inbound{From: "+33611111111", To: to, Text: sessions[2]["code"].(string)}))
		if got := h.get(sessions[2]["id"].(string)); got["status"] != "verified" {
			t.Fatalf("another sender blocked: %v", got)
		}
	})
}

// checkNumberLimitPerKey: creates_per_number_per_hour (2 here) is a budget
// per (API key, sender number). Key shop spends its budget on a number;
// key other still creates for that number (on b, another replica or the
// same server), and shop's 429 reads the same before and after other's
// creates, so it reveals nothing about other.
func checkNumberLimitPerKey(t *testing.T, a, b *harness) {
	t.Helper()
	const body = `{"number": "+14155550177"}`
	for i := range 2 {
		if code, out := a.create(shopKey, body, nil); code != 201 {
			t.Fatalf("shop create %d = %d %v", i+1, code, out)
		}
	}
	code, refused := a.create(shopKey, body, nil)
	if code != 429 {
		t.Fatalf("shop's 3rd create = %d %v, want 429", code, refused)
	}
	for i := range 2 {
		if code, out := b.create(otherKey, body, nil); code != 201 {
			t.Fatalf("other's create %d after shop's 429 = %d %v", i+1, code, out)
		}
	}
	if code, _ := b.create(otherKey, body, nil); code != 429 {
		t.Fatalf("other's 3rd create = %d, want 429 (its own budget)", code)
	}
	code, again := a.create(shopKey, body, nil)
	if code != 429 || fmt.Sprint(again["error"].(map[string]any)["code"]) != fmt.Sprint(refused["error"].(map[string]any)["code"]) ||
		again["error"].(map[string]any)["message"] != refused["error"].(map[string]any)["message"] {
		t.Fatalf("shop's 429 changed after other's creates: %v, then %v", refused, again)
	}
}

// TestNumberLimitPerKey: on every store, and across replicas on a shared
// one.
func TestNumberLimitPerKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		hs := st.replicas(t, strings.Replace(testYAML, "creates_per_number_per_hour: 1000", "creates_per_number_per_hour: 2", 1))
		checkNumberLimitPerKey(t, hs[0], hs[len(hs)-1])
		checkContiguityNumberLimit(t, hs[len(hs)-1])
	})
}

// checkContiguityNumberLimit: the Contiguity-compatible create spends the
// same (key, number) budgets as checkNumberLimitPerKey, both spent now;
// another number's is whole.
func checkContiguityNumberLimit(t *testing.T, h *harness) {
	t.Helper()
	for _, key := range []string{shopKey, otherKey} {
		if w := h.do("POST", "/otp/reverse/initiate", key, []byte(`{"number": "+14155550177"}`), nil); w.Code != 429 {
			t.Fatalf("Contiguity initiate with the key's budget spent = %d %s", w.Code, w.Body)
		}
	}
	if w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550178"}`), nil); w.Code != 200 {
		t.Fatalf("shop's Contiguity initiate for another number = %d %s", w.Code, w.Body)
	}
}
