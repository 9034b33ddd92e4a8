package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/telnyx"
)

// telnyxSeed plays Telnyx in these tests: the entry holds its public key.
var telnyxSeed = base64.StdEncoding.EncodeToString([]byte("telnyx-test-seed-0123456789abcde"))

const telnyxNumber = "+12125550142"

func telnyxPublic() string {
	seed, _ := base64.StdEncoding.DecodeString(telnyxSeed)
	return base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
}

// channelsYAML is whatsappYAML with an app name on the shop key, the
// Twilio number serving sms and call, and a Telnyx entry with one number.
var channelsYAML = strings.NewReplacer(
	"{name: shop, key: ", "{name: shop, app_name: Acme, key: ",
	`{number: "+14155550100", provider: twilio}`, `{number: "+14155550100", provider: twilio, channels: [sms, call]}`,
	"numbers:\n", "  - {name: telnyx, type: telnyx, public_key: \""+telnyxPublic()+"\"}\nnumbers:\n  - {number: \""+telnyxNumber+"\", provider: telnyx}\n",
).Replace(whatsappYAML)

// onEveryStore runs f on a gateway of each store (memory, WAL, Redis:
// forEachStore) with configuration yaml.
func onEveryStore(t *testing.T, yaml string, f func(t *testing.T, h *harness)) {
	forEachStore(t, func(t *testing.T, st testStore) { f(t, st.harness(t, yaml)) })
}

// signedTelnyx is m as Telnyx would post it to the telnyx entry.
func (h *harness) signedTelnyx(m adapters.Inbound) *adapters.Request {
	h.t.Helper()
	a, err := telnyx.New(telnyx.Config{Name: "telnyx", PublicKey: telnyxPublic(), PrivateKey: telnyxSeed})
	if err != nil {
		h.t.Fatal(err)
	}
	u, _ := url.Parse(publicURL + "/webhooks/telnyx")
	r, err := a.Sign(m, u, h.clock())
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// metaEntry names the Meta entry and phone_number_id of a whatsapp number
// of whatsappYAML.
func metaEntry(t *testing.T, number string) (entry, id string) {
	switch number {
	case metaNumber:
		return "meta", metaID
	case "+15550984278":
		return "meta2", "114896151713921"
	}
	t.Fatalf("%s is no Meta number", number)
	return "", ""
}

func routesOf(t *testing.T, v map[string]any) []map[string]any {
	t.Helper()
	raw, _ := v["routes"].([]any)
	var out []map[string]any
	for _, r := range raw {
		out = append(out, r.(map[string]any))
	}
	return out
}

// conforms validates v, an answer decoded from JSON, against the named
// component of openapi.json.
func conforms(t *testing.T, sp *spec, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	sp.schema(t, name, b)
}

func signalsOf(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	s, ok := v["signals"].(map[string]any)
	if !ok {
		t.Fatalf("no signals in %v", v)
	}
	return s
}

// TestCreateChannelsRefused: a bad channels list or client_country, a call
// route without an expected sender or outside channels.call.countries, and
// a channel no number serves are each a 422 naming the field or channel,
// and nothing is created.
func TestCreateChannelsRefused(t *testing.T) {
	h := newHarness(t, channelsYAML)
	for _, tc := range []struct{ name, body, code, says string }{
		{"empty list", `{"number": "+14155550123", "channels": []}`, "invalid_channels", "channels must list"},
		{"unknown channel", `{"number": "+14155550123", "channels": ["sms", "fax"]}`, "invalid_channels", `channels[1]: "fax"`},
		{"duplicate", `{"number": "+14155550123", "channels": ["sms", "whatsapp", "sms"]}`, "invalid_channels", `channels[2]: "sms" is listed twice`},
		{"client_country not ISO", `{"number": "+14155550123", "client_country": "XX"}`, "invalid_country", "client_country"},
		{"client_country alpha-3", `{"number": "+14155550123", "client_country": "USA"}`, "invalid_country", "client_country"},
		{"call in capture mode", `{"channels": ["call"]}`, "channel_unavailable", "channel call"},
		{"call outside call countries", `{"number": "+447400123456", "channels": ["sms", "call"]}`, "channel_unavailable", "channel call"},
		{"pinned number serves none", `{"number": "+14155550123", "to": "` + metaNumber + `", "channels": ["sms"]}`, "channel_unavailable", "serves none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := h.do("POST", "/v1/verifications", shopKey, []byte(tc.body), nil)
			var e struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != 422 || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.says) {
				t.Fatalf("= %d %s, want 422 %s saying %q", w.Code, w.Body, tc.code, tc.says)
			}
		})
	}
	pending, err := h.s.store.PendingByNumber(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for n, c := range pending {
		if c != 0 {
			t.Errorf("a refused create left %d pending on %s", c, n)
		}
	}
}

// TestChannelUnavailableWinsOverNoNumber: a whatsapp route that no number
// serves for the sender is channel_unavailable, not the generic no_number,
// on both APIs; Contiguity's imessage is channel_unavailable too.
func TestChannelUnavailableWinsOverNoNumber(t *testing.T) {
	h := newHarness(t, testYAML) // no whatsapp numbers at all
	code, out := h.create(shopKey, `{"number": "+447400123456", "channels": ["whatsapp"]}`, nil)
	if e, _ := out["error"].(map[string]any); code != 422 || e["code"] != "channel_unavailable" || !strings.Contains(e["message"].(string), "whatsapp") {
		t.Fatalf("= %d %v", code, out)
	}
	for _, service := range []string{"whatsapp", "imessage", "fax"} {
		w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550123", "service": "`+service+`"}`), nil)
		if w.Code != 400 || !strings.Contains(w.Body.String(), service) || !strings.Contains(w.Body.String(), `"object":"error"`) {
			t.Errorf("service %s = %d %s", service, w.Code, w.Body)
		}
	}
}

// TestCreateWithoutChannelsUnchanged: a client that names no channels gets
// the answer it always did: no routes, no new ui links.
func TestCreateWithoutChannelsUnchanged(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		v := h.mustCreate(`{"number": "+14155550123"}`)
		ui := v["ui"].(map[string]any)
		if _, ok := v["routes"]; ok || ui["whatsapp_uri"] != nil || ui["call_uri"] != nil || len(ui) != 4 {
			t.Fatalf("answer changed: %v", v)
		}
		if got := h.get(v["id"].(string)); got["routes"] != nil || got["channel"] != nil || got["signals"] != nil {
			t.Fatalf("pending GET changed: %v", got)
		}
	})
}

// TestWhatsAppRouteEndToEnd: a session with sms and whatsapp routes
// answers both links (the WhatsApp text names the app), verifies through
// a Meta-signed message to its WhatsApp number, and then carries that
// channel, the route's number and the signals.
func TestWhatsAppRouteEndToEnd(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		const sender = "+60173526233"
		sp := loadSpec(t)
		v := h.mustCreate(`{"number": "` + sender + `", "channels": ["sms", "whatsapp"], "client_country": "my"}`)
		conforms(t, sp, "Verification", v)
		code := v["code"].(string)
		routes := routesOf(t, v)
		if len(routes) != 2 || routes[0]["channel"] != "sms" || routes[0]["to"] != v["to"] || routes[0]["uri"] != "sms:"+v["to"].(string)+"?body="+code {
			t.Fatalf("routes = %v", routes)
		}
		wa := routes[1]
		waTo := wa["to"].(string)
		wantURI := "https://wa.me/" + strings.TrimPrefix(waTo, "+") + "?text=Acme%20code%20" + code
		if wa["channel"] != "whatsapp" || wa["uri"] != wantURI || v["ui"].(map[string]any)["whatsapp_uri"] != wantURI {
			t.Fatalf("whatsapp route %v, ui %v; want uri %s", wa, v["ui"], wantURI)
		}
		if got := h.get(v["id"].(string)); len(routesOf(t, got)) != 2 || got["channel"] != nil {
			t.Fatalf("pending GET: %v", got)
		}
		entry, id := metaEntry(t, waTo)
		if w := h.send(h.signed(entry, adapters.Inbound{From: sender, ToID: id, Text: "Acme code " + code, Forwarded: true})); w.Code != 200 {
			t.Fatalf("webhook = %d %s", w.Code, w.Body)
		}
		got := h.get(v["id"].(string))
		conforms(t, sp, "VerificationDetail", got)
		if got["status"] != "verified" || got["channel"] != "whatsapp" || got["route_to"] != waTo {
			t.Fatalf("after the message: %v", got)
		}
		sig := signalsOf(t, got)
		want := map[string]any{"channel": "whatsapp", "attempts": 0.0, "sender_country": "MY", "country_mismatch": false, "forwarded": true, "sender_sessions_24h": 0.0}
		for k, w := range want {
			if sig[k] != w {
				t.Errorf("signals.%s = %v, want %v (%v)", k, sig[k], w, sig)
			}
		}
		if ms, ok := sig["time_to_verify_ms"].(float64); !ok || ms < 0 {
			t.Errorf("time_to_verify_ms = %v", sig["time_to_verify_ms"])
		}
		for _, k := range []string{"line_type", "carrier", "attestation"} {
			if _, ok := sig[k]; ok {
				t.Errorf("signals.%s present, but nothing told it", k)
			}
		}
		// The funnel counts each route of a session of several as offered
		// on its number and channel (never created: the alert on created but
		// never verified would page for the route users leave aside), the
		// verification only on the route that verified.
		h.runOutbox()
		h.awaitFinals(1)
		smsTo := v["to"].(string)
		smsEntry := entryOf(h.s.live(), smsTo)
		for _, m := range []string{
			`mogate_number_verifications_total{channel="sms",number="` + smsTo + `",provider="` + smsEntry + `",step="offered"} 1`,
			`mogate_number_verifications_total{channel="whatsapp",number="` + waTo + `",provider="` + entry + `",step="offered"} 1`,
			`mogate_number_verifications_total{channel="whatsapp",number="` + waTo + `",provider="` + entry + `",step="verified"} 1`,
			`mogate_verifications_finished_total{channel="whatsapp",status="verified"} 1`,
			`mogate_messages_total{channel="whatsapp",outcome="verified",provider="` + entry + `"} 1`,
		} {
			h.hasMetric(m)
		}
		if m := h.do("GET", "/metrics", "", nil, nil).Body.String(); strings.Contains(m, `number="`+smsTo+`",provider="`+smsEntry+`",step="verified"`) || strings.Contains(m, `step="created"`) {
			t.Errorf("the sms route counted a verification it did not make:\n%s", grep(m, "mogate_number_verifications_total"))
		}
	})
}

// TestSMSLinksFollowTheSMSRoute: when WhatsApp is asked for first, `to`
// is the WhatsApp number, but ui.text and ui.sms_uri name the number of
// the SMS route, the one the user can text.
func TestSMSLinksFollowTheSMSRoute(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		v := h.mustCreate(`{"number": "+60173526233", "channels": ["whatsapp", "sms"]}`)
		routes := routesOf(t, v)
		ui := v["ui"].(map[string]any)
		if len(routes) != 2 || v["to"] != routes[0]["to"] || routes[1]["to"] == routes[0]["to"] {
			t.Fatalf("want a whatsapp number first and another for sms: %v", v)
		}
		smsTo := routes[1]["to"].(string)
		if ui["sms_uri"] != routes[1]["uri"] || !strings.Contains(ui["text"].(string), humanNumber(smsTo)) {
			t.Fatalf("ui %v does not name the SMS route's %s", ui, smsTo)
		}
	})
}

// TestCallRouteEndToEnd: a US sender's call route is a tel: link on a
// number that serves calls; an attested call verifies the session, which
// then carries channel call and attestation A.
func TestCallRouteEndToEnd(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		const sender = "+14155550123"
		sp := loadSpec(t)
		v := h.mustCreate(`{"number": "` + sender + `", "channels": ["sms", "call"], "client_country": "CA"}`)
		conforms(t, sp, "Verification", v)
		routes := routesOf(t, v)
		if len(routes) != 2 || routes[1]["channel"] != "call" || routes[1]["to"] != "+14155550100" || routes[1]["uri"] != "tel:+14155550100" ||
			v["ui"].(map[string]any)["call_uri"] != "tel:+14155550100" {
			t.Fatalf("answer %v", v)
		}
		w := h.send(h.signed("twilio", adapters.Inbound{Channel: adapters.ChannelCall, MessageID: "CAe2e", From: sender, To: "+14155550100", Attestation: "A"}))
		if w.Code != 200 || w.Body.String() != adapters.RejectCall {
			t.Fatalf("call answered %d %q", w.Code, w.Body)
		}
		got := h.get(v["id"].(string))
		conforms(t, sp, "VerificationDetail", got)
		sig := signalsOf(t, got)
		mismatch, known := sig["country_mismatch"].(bool)
		if got["status"] != "verified" || got["channel"] != "call" || got["route_to"] != "+14155550100" ||
			sig["attestation"] != "A" || sig["sender_country"] != "US" || !known || !mismatch || sig["forwarded"] != nil {
			t.Fatalf("after the call: %v", got)
		}
	})
}

// TestTelnyxSignalsAndLineTypePolicy: a verified session from a Telnyx
// SMS carries its line type and carrier; with reject_line_types the same
// kind of message fails the session (reason line_type_rejected), which
// still shows the channel and signals.
func TestTelnyxSignalsAndLineTypePolicy(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		const sender = "+13125550199"
		v := h.mustCreate(`{"number": "` + sender + `", "to": "` + telnyxNumber + `"}`)
		if w := h.send(h.signedTelnyx(adapters.Inbound{From: sender, To: telnyxNumber, Text: v["code"].(string), LineType: "mobile", Carrier: "T-Mobile USA, Inc."})); w.Code != 200 {
			t.Fatalf("webhook = %d %s", w.Code, w.Body)
		}
		got := h.get(v["id"].(string))
		sig := signalsOf(t, got)
		if got["status"] != "verified" || got["channel"] != "sms" || got["route_to"] != telnyxNumber ||
			sig["line_type"] != "mobile" || sig["carrier"] != "T-Mobile USA, Inc." || sig["sender_country"] != "US" || sig["country_mismatch"] != nil {
			t.Fatalf("after the message: %v", got)
		}
	})
	onEveryStore(t, channelsYAML+"verification: {reject_line_types: [voip]}\n", func(t *testing.T, h *harness) {
		const sender = "+13125550198"
		v := h.mustCreate(`{"number": "` + sender + `", "to": "` + telnyxNumber + `"}`)
		if w := h.send(h.signedTelnyx(adapters.Inbound{From: sender, To: telnyxNumber, Text: v["code"].(string), LineType: "voip"})); w.Code != 200 {
			t.Fatalf("webhook = %d %s", w.Code, w.Body)
		}
		got := h.get(v["id"].(string))
		if got["status"] != "failed" || got["reason"] != "line_type_rejected" || got["channel"] != "sms" || signalsOf(t, got)["line_type"] != "voip" {
			t.Fatalf("after a voip message: %v", got)
		}
		w := h.do("GET", "/v1/verifications/"+v["id"].(string)+"/events", shopKey, nil, nil)
		d := sseData(w.Body.String())
		if len(d) != 1 || !strings.Contains(d[0], `"reason":"line_type_rejected"`) || !strings.Contains(d[0], `"line_type":"voip"`) {
			t.Fatalf("events: %s", w.Body)
		}
		sp := loadSpec(t)
		sp.schema(t, "StatusEvent", []byte(d[0]))
		conforms(t, sp, "VerificationDetail", got)
	})
}

// TestContiguityWhatsAppService: service whatsapp makes a session whose
// one route is WhatsApp; the answer's QR link is the wa.me link.
func TestContiguityWhatsAppService(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+60173526233", "service": "whatsapp"}`), nil)
		var env struct {
			Data struct {
				Service, To string
				UI          struct {
					QRCode string `json:"qr_code"`
				}
			}
		}
		_ = json.Unmarshal(w.Body.Bytes(), &env)
		if w.Code != 200 || env.Data.Service != "whatsapp" || !strings.HasPrefix(env.Data.UI.QRCode, "https://wa.me/"+strings.TrimPrefix(env.Data.To, "+")+"?text=Acme%20code%20") {
			t.Fatalf("initiate = %d %s", w.Code, w.Body)
		}
	})
}

// TestEventsCarryChannelAndSignals: both event formats of a verified
// session carry its channel, the route's number and the signals (here of
// a session made before routes: sms to its number).
func TestEventsCarryChannelAndSignals(t *testing.T) {
	rcv := newReceiver(t)
	h, _ := outboxHarness(t, rcv.srv.URL, OutboxOptions{BaseDelay: 10 * time.Millisecond})
	v := h.mustCreate(`{"number": "+14155550123"}`)
	h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
	w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550124", "factor": "4321"}`), nil)
	if w.Code != 200 {
		t.Fatalf("initiate = %d %s", w.Code, w.Body)
	}
	h.send(h.signed("twilio", adapters.Inbound{From: "+14155550124", To: "+14155550100", Text: "4321"}))
	eventually(t, "two events", func() bool { return len(rcv.accepted()) == 2 })
	for _, g := range rcv.accepted() {
		var ev struct {
			Data struct {
				Channel string         `json:"channel"`
				RouteTo string         `json:"route_to"`
				Signals map[string]any `json:"signals"`
			}
		}
		if err := json.Unmarshal(g.body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Data.Channel != "sms" || ev.Data.RouteTo != "+14155550100" || ev.Data.Signals["channel"] != "sms" || ev.Data.Signals["sender_country"] != "US" {
			t.Errorf("event without channel and signals: %s", g.body)
		}
	}
}

// TestNumbersListChannels: GET /v1/numbers shows each number's channels,
// its entry's list or its provider type's default.
func TestNumbersListChannels(t *testing.T) {
	h := newHarness(t, channelsYAML)
	w := h.do("GET", "/v1/numbers", shopKey, nil, nil)
	var l struct {
		Data []struct {
			Number   string
			Channels []string
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || w.Code != 200 {
		t.Fatalf("numbers = %d %s", w.Code, w.Body)
	}
	want := map[string]string{"+14155550100": "sms,call", metaNumber: "whatsapp", "+447700900123": "sms", telnyxNumber: "sms"}
	for _, n := range l.Data {
		if w, ok := want[n.Number]; ok && strings.Join(n.Channels, ",") != w {
			t.Errorf("%s channels %v, want %s", n.Number, n.Channels, w)
		}
		delete(want, n.Number)
	}
	if len(want) != 0 {
		t.Errorf("numbers missing: %v", want)
	}
}

// TestPendingListsARoutedSessionOnce: a session with routes on two numbers
// is listed once for its sender, with its routes.
func TestPendingListsARoutedSessionOnce(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		v := h.mustCreate(`{"number": "+60173526233", "channels": ["sms", "whatsapp"]}`)
		w := h.do("GET", "/v1/verifications?number=%2B60173526233", shopKey, nil, nil)
		var l struct{ Data []map[string]any }
		if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || w.Code != 200 {
			t.Fatalf("list = %d %s", w.Code, w.Body)
		}
		if len(l.Data) != 1 || l.Data[0]["id"] != v["id"] || len(routesOf(t, l.Data[0])) != 2 {
			t.Fatalf("list = %s", w.Body)
		}
	})
}

// TestPinnedWhatsAppNumberWithoutChannels: a create that pins a
// WhatsApp-only number and names no channels gets its one route on
// WhatsApp, so a Meta message verifies it.
func TestPinnedWhatsAppNumberWithoutChannels(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		const sender = "+60173526233"
		v := h.mustCreate(`{"number": "` + sender + `", "to": "` + metaNumber + `"}`)
		if r := routesOf(t, v); len(r) != 1 || r[0]["channel"] != "whatsapp" {
			t.Fatalf("routes = %v", r)
		}
		if w := h.send(h.signed("meta", adapters.Inbound{From: sender, ToID: metaID, Text: v["code"].(string)})); w.Code != 200 {
			t.Fatalf("webhook = %d %s", w.Code, w.Body)
		}
		if got := h.get(v["id"].(string)); got["status"] != "verified" || got["channel"] != "whatsapp" {
			t.Fatalf("after the message: %v", got)
		}
	})
}

// TestOneCallSessionPerCallerAndNumber: a call carries no code, so two
// pending call sessions of one caller on one number could not be told
// apart — the second, of another API key or the same, gets another number
// that takes calls, and with none free is 422 channel_unavailable; once
// the first is no longer pending, the number is free again. (An attacker
// who creates a call session for a victim's number must not receive the
// victim's call.)
func TestOneCallSessionPerCallerAndNumber(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		const sender = "+14155550123"
		first := h.mustCreate(`{"number": "` + sender + `", "channels": ["call"]}`)
		if routes := routesOf(t, first); len(routes) != 1 || routes[0]["to"] != "+14155550100" {
			t.Fatalf("first call session: %v", first)
		}
		for _, key := range []string{otherKey, shopKey} {
			code, out := h.create(key, `{"number": "`+sender+`", "channels": ["call"]}`, nil)
			if code != 422 || out["error"].(map[string]any)["code"] != "channel_unavailable" {
				t.Fatalf("a second pending call session on the only call number: %d %v", code, out)
			}
			code, out = h.create(key, `{"number": "`+sender+`", "to": "+14155550100", "channels": ["sms", "call"]}`, nil)
			if code != 422 || out["error"].(map[string]any)["code"] != "channel_unavailable" {
				t.Fatalf("a second pending call session pinned to the call number: %d %v", code, out)
			}
		}
		// Another caller is not held up, and an SMS-only session of the
		// same caller is not either.
		h.mustCreate(`{"number": "+14155550124", "channels": ["call"]}`)
		if code, out := h.create(otherKey, `{"number": "`+sender+`", "channels": ["sms"]}`, nil); code != 201 {
			t.Fatalf("an sms session of the same caller: %d %v", code, out)
		}
		if w := h.do("POST", "/v1/verifications/"+first["id"].(string)+"/cancel", shopKey, nil, nil); w.Code != 200 {
			t.Fatalf("cancel = %d %s", w.Code, w.Body)
		}
		if code, out := h.create(otherKey, `{"number": "`+sender+`", "channels": ["call"]}`, nil); code != 201 {
			t.Fatalf("after the first was cancelled: %d %v", code, out)
		}
	})
}

// TestUIWithoutSMSRoute: a session without an SMS route never tells the
// user to text a number that takes no SMS: ui.text says what its first
// route asks, ui.sms_uri and the QR hold that route's link; Contiguity's
// answer names that route's service, and service sms on a number that
// takes no SMS is 422 channel_unavailable, not a WhatsApp session.
func TestUIWithoutSMSRoute(t *testing.T) {
	onEveryStore(t, channelsYAML, func(t *testing.T, h *harness) {
		v := h.mustCreate(`{"number": "+60173526233", "channels": ["whatsapp"]}`)
		ui := v["ui"].(map[string]any)
		wa := routesOf(t, v)[0]
		if ui["sms_uri"] != wa["uri"] || strings.Contains(ui["text"].(string), "Text ") || !strings.Contains(ui["text"].(string), "WhatsApp") ||
			!strings.Contains(ui["text"].(string), humanNumber(wa["to"].(string))) {
			t.Fatalf("ui %v for a whatsapp-only session (route %v)", ui, wa)
		}
		if w := h.do("GET", "/v1/verifications/"+v["id"].(string)+"/qr.png", shopKey, nil, nil); !bytes.Equal(w.Body.Bytes(), qrOf(t, wa["uri"].(string))) {
			t.Fatalf("the API's QR is not the whatsapp link")
		}
		c := h.mustCreate(`{"number": "+14155550123", "channels": ["call"]}`)
		if ui := c["ui"].(map[string]any); ui["sms_uri"] != "tel:+14155550100" || !strings.Contains(ui["text"].(string), "Call +1 415-555-0100") {
			t.Fatalf("ui %v for a call-only session", ui)
		}

		waTo := wa["to"].(string)
		w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+60173526233", "to": "`+waTo+`", "service": "sms"}`), nil)
		if w.Code == 200 || !strings.Contains(w.Body.String(), "channel") {
			t.Fatalf("service sms pinned to a whatsapp-only number: %d %s", w.Code, w.Body)
		}
		w = h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+60173526233", "to": "`+waTo+`"}`), nil)
		var out struct {
			Data struct {
				Service string `json:"service"`
				UI      struct {
					Text   string `json:"text"`
					QRCode string `json:"qr_code"`
				} `json:"ui"`
			} `json:"data"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 || out.Data.Service != "whatsapp" || !strings.HasPrefix(out.Data.UI.QRCode, "https://wa.me/") || strings.Contains(out.Data.UI.Text, "Text ") {
			t.Fatalf("no service, pinned to a whatsapp-only number: %d %s", w.Code, w.Body)
		}
	})
}

// TestCaptureNeedsAPhoneNumber: only a phone number can become a capture
// session's verified number; an alphanumeric sender (or a user id a
// provider passes as its sender) holding the code verifies nothing.
func TestCaptureNeedsAPhoneNumber(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"to": "+14155550100"}`)
	for i, from := range []string{"ACME", "US.13491208655302741918", "+12"} {
		w := h.send(h.signed("twilio", adapters.Inbound{MessageID: "SMalpha" + string(rune('a'+i)), From: from, To: "+14155550100", Text: v["code"].(string)}))
		if w.Code != 200 {
			t.Fatalf("webhook from %s = %d %s", from, w.Code, w.Body)
		}
		if got := h.get(v["id"].(string)); got["status"] != "pending" {
			t.Fatalf("a message from %q verified a capture session: %v", from, got)
		}
	}
	w := h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
	if got := h.get(v["id"].(string)); w.Code != 200 || got["status"] != "verified" {
		t.Fatalf("a phone number's message: %d %v", w.Code, got)
	}
}

// TestWhatsAppAcrossReplicas: a session created with sms and whatsapp
// routes on one replica verifies through a Meta-signed webhook that
// another replica receives (one replica for the memory stores).
func TestWhatsAppAcrossReplicas(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		hs := st.replicas(t, channelsYAML)
		first, last := hs[0], hs[len(hs)-1]
		const sender = "+60173526233"
		v := first.mustCreate(`{"number": "` + sender + `", "channels": ["sms", "whatsapp"]}`)
		wa := routesOf(t, v)[1]
		entry, id := metaEntry(t, wa["to"].(string))
		if w := last.send(last.signed(entry, adapters.Inbound{From: sender, ToID: id, Text: "Acme code " + v["code"].(string)})); w.Code != 200 {
			t.Fatalf("webhook on the other replica = %d %s", w.Code, w.Body)
		}
		if got := first.get(v["id"].(string)); got["status"] != "verified" || got["channel"] != "whatsapp" || got["route_to"] != wa["to"] {
			t.Fatalf("on the first replica: %v", got)
		}
	})
}
