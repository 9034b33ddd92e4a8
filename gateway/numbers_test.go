package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
)

// TestNumbersView: GET /v1/numbers shows, per number, the provider entry,
// countries, weight (0: drained), health, pending and the last 24 hours'
// created / verified / expired, counted where sessions are made and end.
func TestNumbersView(t *testing.T) {
	h := newHarness(t, strings.Replace(testYAML, `provider: vonage-messages, countries: [GB]}`, `provider: vonage-messages, countries: [GB], weight: 0}`, 1))
	verified := h.mustCreate(`{"number": "+14155550123"}`)
	h.mustCreate(`{"number": "+14155550124"}`) // will expire
	if w := h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: verified["code"].(string)})); w.Code != 200 {
		t.Fatalf("webhook = %d %s", w.Code, w.Body)
	}
	h.advance(11 * time.Minute)
	if err := h.s.m.Sweep(); err != nil {
		t.Fatal(err)
	}
	h.observeFinals()
	h.mustCreate(`{"number": "+14155550125"}`) // pending

	w := h.do("GET", "/v1/numbers", shopKey, nil, nil)
	var out struct {
		Data []struct {
			Number, Provider, Health string
			Countries                []string
			Weight                   float64
			Pending                  int
			Last24h                  struct{ Created, Verified, Expired int } `json:"last_24h"`
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 || len(out.Data) != 4 {
		t.Fatalf("numbers = %d %s", w.Code, w.Body)
	}
	us, drained := out.Data[0], out.Data[2]
	if us.Number != "+14155550100" || us.Provider != "twilio" || us.Health != "healthy" || us.Pending != 1 || us.Weight != 1 {
		t.Errorf("US number = %+v", us)
	}
	if us.Last24h.Created != 3 || us.Last24h.Verified != 1 || us.Last24h.Expired != 1 {
		t.Errorf("US number's last 24 h = %+v", us.Last24h)
	}
	if drained.Number != "+447700900124" || drained.Weight != 0 || strings.Join(drained.Countries, ",") != "GB" || drained.Last24h.Created != 0 {
		t.Errorf("drained number = %+v", drained)
	}
	if code, body := h.create(shopKey, `{"number": "+447400123456", "to": "+447700900124"}`, nil); code != 422 {
		t.Errorf("pinning the drained number = %d %v", code, body)
	}
	h.advance(25 * time.Hour)
	w = h.do("GET", "/v1/numbers", shopKey, nil, nil)
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	if out.Data[0].Last24h.Created != 0 || out.Data[0].Last24h.Verified != 0 {
		t.Errorf("a day later = %+v", out.Data[0].Last24h)
	}
}
