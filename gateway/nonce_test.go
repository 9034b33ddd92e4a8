package gateway

import (
	"log/slog"
	"net/http"
	"net/url"
	"testing"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/plivo"
	"github.com/mogate/mogate/config"
)

// stripV3 returns r as a forger would send it: the V3 signature (which
// covers the body) removed, the V2 one (which does not) kept, and a body of
// the forger's choice.
func stripV3(r *adapters.Request, body string) *adapters.Request {
	h := r.Header.Clone()
	h.Del(plivo.HeaderV3)
	h.Del(plivo.HeaderV3Nonce)
	return &adapters.Request{Method: r.Method, URL: r.URL, Header: h, Body: []byte(body)}
}

func plivoForm(from, to, text, id string) string {
	return url.Values{"From": {from[1:]}, "To": {to[1:]}, "Text": {text}, "Type": {"sms"}, "MessageUUID": {id}}.Encode()
}

// TestPlivoV2Nonce: stripping X-Plivo-Signature-V3 from one genuine request
// and replaying its V2 signature (URL + nonce only) with a forged body
// verified someone else's number. Every accepted request now spends its V2
// nonce durably, and a V2-only request with a spent nonce is refused.
func TestPlivoV2Nonce(t *testing.T) {
	h := newHarness(t, testYAML)
	const victim, plivoNumber = "+33611111111", "+33757000000"
	v := h.mustCreate(`{"number":"` + victim + `","to":"` + plivoNumber + `"}`)

	genuine := h.signed("plivo", adapters.Inbound{From: "+33622222222", To: plivoNumber, Text: "hello", MessageID: "uuid-genuine"})
	if w := h.send(genuine); w.Code != http.StatusOK {
		t.Fatalf("genuine = %d %s", w.Code, w.Body)
	}
	forged := stripV3(genuine, plivoForm(victim, plivoNumber, v["code"].(string), "uuid-forged"))
	if w := h.send(forged); w.Code != http.StatusForbidden {
		t.Fatalf("V2 replay with a forged body = %d %s", w.Code, w.Body)
	}
	if got := h.get(v["id"].(string)); got["status"] != "pending" {
		t.Fatalf("forged SMS changed the session: %v", got)
	}
	// A provider redelivery of the genuine request (V3 covers its body) is
	// still a duplicate, answered 200.
	if w := h.send(genuine); w.Code != http.StatusOK {
		t.Fatalf("genuine redelivery = %d %s", w.Code, w.Body)
	}

	// A V2-only request is good once.
	other := h.signed("plivo", adapters.Inbound{From: victim, To: plivoNumber, Text: "nope", MessageID: "uuid-v2"})
	v2only := stripV3(other, string(other.Body))
	if w := h.send(v2only); w.Code != http.StatusOK {
		t.Fatalf("fresh V2-only = %d %s", w.Code, w.Body)
	}
	if w := h.send(stripV3(other, plivoForm(victim, plivoNumber, v["code"].(string), "uuid-v2b"))); w.Code != http.StatusForbidden {
		t.Fatalf("spent V2 nonce with another body = %d %s", w.Code, w.Body)
	}
	if got := h.get(v["id"].(string)); got["status"] != "pending" {
		t.Fatalf("session = %v", got)
	}
}

// TestPlivoV2NonceSurvivesRestart: nonces are spent in the write-ahead log,
// so a restart does not make a captured V2 signature good again.
func TestPlivoV2NonceSurvivesRestart(t *testing.T) {
	cfg, err := config.Parse([]byte(testYAML+"data_dir: "+t.TempDir()+"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	open := func() *harness {
		s, _, err := open(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)}, false)
		if err != nil {
			t.Fatal(err)
		}
		s.SetReady(true)
		return &harness{t: t, s: s, h: s.Handler(), logs: &syncBuffer{}}
	}
	h := open()
	genuine := h.signed("plivo", adapters.Inbound{From: "+33622222222", To: "+33757000000", Text: "hello", MessageID: "uuid-1"})
	if w := h.send(genuine); w.Code != http.StatusOK {
		t.Fatalf("genuine = %d %s", w.Code, w.Body)
	}
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	h = open()
	defer h.s.Close()
	forged := stripV3(genuine, plivoForm("+33611111111", "+33757000000", "123456", "uuid-2"))
	if w := h.send(forged); w.Code != http.StatusForbidden {
		t.Fatalf("V2 replay after a restart = %d %s", w.Code, w.Body)
	}
}
