package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/whatsapp"
	"github.com/mogate/mogate/config"
)

const (
	metaSecret = "meta-SECRETVALUE-9"
	metaToken  = "metaverify-SECRETVALUE-10"
	metaID     = "114896151713920"
	metaNumber = "+15550984277"
)

// whatsappYAML is testYAML with two Meta entries, each with one number.
var whatsappYAML = strings.Replace(testYAML, "numbers:\n",
	"  - {name: meta, type: whatsapp, app_secret: "+metaSecret+", verify_token: "+metaToken+"}\n"+
		"  - {name: meta2, type: whatsapp, app_secret: meta2-SECRETVALUE-11, verify_token: meta2verify-SECRETVALUE-12}\n"+
		"numbers:\n"+
		"  - {number: \""+metaNumber+"\", provider: meta, phone_number_id: \""+metaID+"\", channels: [whatsapp], countries: [\"*\"]}\n"+
		"  - {number: \"+15550984278\", provider: meta2, phone_number_id: \"114896151713921\", channels: [whatsapp], countries: [\"*\"]}\n", 1)

// newWhatsAppHarness serves whatsappYAML. Sessions have no routes yet: one
// made with the Meta number as its "to" is matched by WhatsApp messages.
func newWhatsAppHarness(t *testing.T) *harness {
	t.Helper()
	return newHarness(t, whatsappYAML)
}

func (h *harness) hasMetric(want string) {
	h.t.Helper()
	if m := h.do("GET", "/metrics", "", nil, nil).Body.String(); !strings.Contains(m, want) {
		h.t.Errorf("metrics lack %s", want)
	}
}

func TestWhatsAppHandshake(t *testing.T) {
	h := newWhatsAppHarness(t)
	for _, tc := range []struct {
		name, query string
		status      int
		body        string
	}{
		{"right token", "hub.mode=subscribe&hub.verify_token=" + metaToken + "&hub.challenge=1158201444", 200, "1158201444"},
		{"wrong token", "hub.mode=subscribe&hub.verify_token=meta2verify-SECRETVALUE-12&hub.challenge=1158201444", 403, ""},
		{"no mode", "hub.verify_token=" + metaToken + "&hub.challenge=1158201444", 403, ""},
		{"markup challenge", "hub.mode=subscribe&hub.verify_token=" + metaToken + "&hub.challenge=%3Cb%3E", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := h.do("GET", "/webhooks/meta?"+tc.query, "", nil, nil)
			if w.Code != tc.status || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
				t.Fatalf("GET = %d %q %q, want %d text/plain", w.Code, w.Header().Get("Content-Type"), w.Body, tc.status)
			}
			if tc.status == 200 && w.Body.String() != tc.body {
				t.Errorf("body = %q, want the challenge %q", w.Body, tc.body)
			}
			if tc.status != 200 && strings.Contains(w.Body.String(), "1158201444") {
				t.Errorf("a refused handshake echoed the challenge: %q", w.Body)
			}
		})
	}
	h.hasMetric(`mogate_webhooks_total{provider="meta",result="handshake"} 1`)
	h.hasMetric(`mogate_webhooks_total{provider="meta",result="unauthenticated"} 2`)
	h.hasMetric(`mogate_webhooks_total{provider="meta",result="malformed"} 1`)
	// An adapter without a handshake: a GET is checked like any request.
	if w := h.do("GET", "/webhooks/vonage-messages?hub.mode=subscribe&hub.challenge=1", "", nil, nil); w.Code != 401 {
		t.Errorf("GET vonage-messages = %d, want 401 as before", w.Code)
	}
}

// TestWhatsAppRoutesByPhoneNumberID: a Meta-signed message verifies the
// session of the entry's number with that phone_number_id; a bad or
// missing signature, an unknown id, or another entry's id changes nothing.
func TestWhatsAppRoutesByPhoneNumberID(t *testing.T) {
	h := newWhatsAppHarness(t)
	const sender = "+60173526233"
	v := h.mustCreate(`{"number": "` + sender + `", "to": "` + metaNumber + `"}`)
	other := h.mustCreate(`{"number": "` + sender + `", "to": "+15550984278"}`)
	code := v["code"].(string)
	msg := adapters.Inbound{From: sender, ToID: metaID, Text: "Acme code " + code}

	missing := h.signed("meta", msg)
	missing.Header.Del(whatsapp.SignatureHeader)
	if w := h.send(missing); w.Code != 401 || !strings.Contains(w.Body.String(), "missing_signature") {
		t.Fatalf("missing signature = %d %s", w.Code, w.Body)
	}
	wrong := h.signed("meta", msg)
	wrong.Header.Set(whatsapp.SignatureHeader, whatsapp.Signature("meta2-SECRETVALUE-11", wrong.Body))
	if w := h.send(wrong); w.Code != 403 {
		t.Fatalf("another app's signature = %d", w.Code)
	}
	for _, toID := range []string{"999", "114896151713921"} { // unknown; meta2's number
		m := msg
		m.ToID = toID
		m.Text = other["code"].(string)
		if w := h.send(h.signed("meta", m)); w.Code != 200 || w.Body.Len() != 0 {
			t.Fatalf("to_id %s = %d %q", toID, w.Code, w.Body)
		}
	}
	h.hasMetric(`mogate_messages_total{channel="whatsapp",outcome="unknown_number",provider="meta"} 2`)
	for _, s := range []map[string]any{v, other} {
		if got := h.get(s["id"].(string)); got["status"] != "pending" || got["attempts"] != 0.0 {
			t.Fatalf("session touched: %v", got)
		}
	}
	w := h.send(h.signed("meta", msg))
	if w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("webhook = %d %q", w.Code, w.Body)
	}
	if got := h.get(v["id"].(string)); got["status"] != "verified" || got["verified_number"] != sender || got["provider"] != "meta" {
		t.Fatalf("after the message: %v", got)
	}
	if got := h.get(other["id"].(string)); got["status"] != "pending" {
		t.Fatalf("meta2's session: %v", got)
	}
}

// TestWhatsAppSenderHidden: a username sender (no phone number) verifies
// nothing, costs no attempt, and is acknowledged and counted.
func TestWhatsAppSenderHidden(t *testing.T) {
	h := newWhatsAppHarness(t)
	const sender = "+60173526233"
	v := h.mustCreate(`{"number": "` + sender + `", "to": "` + metaNumber + `"}`)
	capture := h.mustCreate(`{"to": "` + metaNumber + `"}`)
	for _, text := range []string{v["code"].(string), capture["code"].(string), "000000"} {
		w := h.send(h.signed("meta", adapters.Inbound{From: "MY.13491208655302741918", SenderHidden: true, ToID: metaID, Text: text}))
		if w.Code != 200 {
			t.Fatalf("hidden sender = %d %s", w.Code, w.Body)
		}
	}
	for _, s := range []map[string]any{v, capture} {
		if got := h.get(s["id"].(string)); got["status"] != "pending" || got["attempts"] != 0.0 {
			t.Fatalf("session touched by a hidden sender: %v", got)
		}
	}
	h.hasMetric(`mogate_messages_total{channel="whatsapp",outcome="sender_hidden",provider="meta"} 3`)
	if !strings.Contains(h.logs.String(), `"outcome":"sender_hidden"`) {
		t.Error("the hidden sender was not logged")
	}
	if strings.Contains(h.logs.String(), "MY.13491208655302741918") {
		t.Error("the log holds the user id")
	}
}

// TestWrongChannel: a WhatsApp message to a number that serves only SMS
// changes nothing (wrong_channel); once the number lists whatsapp, it
// verifies.
func TestWrongChannel(t *testing.T) {
	const sender, number = "+447400123457", "+447700900124"
	for _, tc := range []struct {
		name     string
		channels []string
		create   string // the create's channels
		status   string
	}{
		{"sms only", nil, "", "pending"},
		{"sms and whatsapp", []string{"sms", "whatsapp"}, `, "channels": ["sms", "whatsapp"]`, "verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, testYAML, func(c *config.Config) {
				for i := range c.Numbers {
					if c.Numbers[i].Number == number {
						c.Numbers[i].Channels = tc.channels
					}
				}
			})
			v := h.mustCreate(`{"number": "` + sender + `", "to": "` + number + `"` + tc.create + `}`)
			w := h.send(h.signed("vonage-messages", adapters.Inbound{From: sender, To: number, Channel: adapters.ChannelWhatsApp, Text: v["code"].(string)}))
			if w.Code != http.StatusOK {
				t.Fatalf("webhook = %d %s", w.Code, w.Body)
			}
			if got := h.get(v["id"].(string)); got["status"] != tc.status || got["attempts"] != 0.0 && tc.status == "pending" {
				t.Fatalf("after a whatsapp message: %v, want %s", got, tc.status)
			}
			if tc.status == "pending" {
				h.hasMetric(`mogate_messages_total{channel="whatsapp",outcome="wrong_channel",provider="vonage-messages"} 1`)
			}
		})
	}
}

// TestSMSSessionNeverOnAWhatsAppNumber: a create that pins no number gets
// one that serves sms, never a WhatsApp-only number serving "*" too.
func TestSMSSessionNeverOnAWhatsAppNumber(t *testing.T) {
	h := newWhatsAppHarness(t)
	for i := range 30 {
		v := h.mustCreate(fmt.Sprintf(`{"number": "+4915112345%03d"}`, i))
		if v["to"] != "+33757000000" {
			t.Fatalf("an SMS session got %v, want the sms \"*\" number", v["to"])
		}
	}
}

// TestStaleMessageChangesNothing: a message whose provider-stated time is
// older than retention (the dedupe window) is acknowledged and changes
// nothing — a recorded Meta delivery replayed after its wamid left the
// dedupe memory must not spend a session's attempts or verify it.
func TestStaleMessageChangesNothing(t *testing.T) {
	h := newWhatsAppHarness(t)
	v := h.mustCreate(`{"number": "+60173526233", "to": "` + metaNumber + `"}`)
	a := h.s.adapters["meta"].(adapters.Signer)
	u, _ := url.Parse(publicURL + "/webhooks/meta")
	old, err := a.Sign(adapters.Inbound{From: "+60173526233", ToID: metaID, Text: "wrong 000000"}, u, h.clock().Add(-25*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if w := h.send(old); w.Code != 200 {
		t.Fatalf("stale message = %d %s", w.Code, w.Body)
	}
	if got := h.get(v["id"].(string)); got["status"] != "pending" || got["attempts"] != 0.0 {
		t.Fatalf("a stale message changed the session: %v", got)
	}
	h.hasMetric(`mogate_messages_total{channel="whatsapp",outcome="stale",provider="meta"} 1`)
	if w := h.send(h.signed("meta", adapters.Inbound{From: "+60173526233", ToID: metaID, Text: v["code"].(string)})); w.Code != 200 {
		t.Fatalf("fresh message = %d %s", w.Code, w.Body)
	}
	if got := h.get(v["id"].(string)); got["status"] != "verified" {
		t.Fatalf("a fresh message did not verify: %v", got)
	}
}
