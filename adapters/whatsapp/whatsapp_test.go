package whatsapp

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
)

// The shape of Meta's reference sample (values from a public capture, code changed).
const sample = `{"object":"whatsapp_business_account","entry":[{"id":"122951744235903","changes":[{"field":"messages","value":{` +
	`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550984277","phone_number_id":"114896151713920"},` +
	`"contacts":[{"profile":{"name":"Lee"},"wa_id":"60173526233","user_id":"MY.13491208655302741918"}],` +
	`"messages":[{"from":"60173526233","from_user_id":"MY.13491208655302741918","id":"wamid.HBgLNjAxNzM1MjYyMzMVAgASGBQzQUI0NkE4NjM1QTU2NjVGOURGQgA=",` +
	`"timestamp":"1694427240","type":"text","text":{"body":"Verify 482913"}}]}}]}]}`

func newAdapter(t *testing.T) *Adapter {
	t.Helper()
	a, err := New(Config{Name: "meta", AppSecret: "app-secret", VerifyToken: "verify-me", Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNew(t *testing.T) {
	for _, c := range []Config{{VerifyToken: "t"}, {AppSecret: "s"}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted a missing key", c)
		}
	}
}

func TestSignature(t *testing.T) {
	// HMAC-SHA256("app-secret", "{}"), computed independently (Python's hmac).
	if got := Signature("app-secret", []byte("{}")); got != "sha256=bd9549eb87a414d3df28b5a60ea86d4a11e2f1c6258edbd18f56d3c23c0f908d" {
		t.Errorf("Signature = %s", got)
	}
}

func TestVerify(t *testing.T) {
	a := newAdapter(t)
	mk := func(sig string, body string) *adapters.Request {
		h := http.Header{}
		if sig != "" {
			h.Set(SignatureHeader, sig)
		}
		return &adapters.Request{Method: "POST", Header: h, Body: []byte(body)}
	}
	good := Signature("app-secret", []byte(sample))
	if err := a.Verify(mk(good, sample)); err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(mk(strings.ToUpper(good[:7])+strings.ToUpper(good[7:]), sample)); err == nil {
		t.Error("SHA256= prefix accepted")
	}
	for name, r := range map[string]*adapters.Request{
		"wrong secret": mk(Signature("other", []byte(sample)), sample),
		"tampered":     mk(good, strings.Replace(sample, "482913", "482914", 1)),
		"no prefix":    mk(strings.TrimPrefix(good, "sha256="), sample),
		"sha1":         mk("sha1="+strings.TrimPrefix(good, "sha256="), sample),
		"not hex":      mk("sha256=zz", sample),
		"truncated":    mk(good[:len(good)-2], sample),
	} {
		err := a.Verify(r)
		if !errors.Is(err, adapters.ErrUnauthenticated) || errors.Is(err, adapters.ErrMissingSignature) {
			t.Errorf("%s: %v, want unauthenticated (403)", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "app-secret") {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
	if err := a.Verify(mk("", sample)); !errors.Is(err, adapters.ErrMissingSignature) {
		t.Errorf("unsigned: %v, want missing signature (401)", err)
	}
	// Escaped unicode: the signature covers the bytes as sent, not a re-encoding.
	esc := strings.Replace(sample, "Verify 482913", `V\u00e9rifier \u0034\u0038\u0032913 \ud83d\ude00`, 1)
	if err := a.Verify(mk(Signature("app-secret", []byte(esc)), esc)); err != nil {
		t.Errorf("escaped unicode: %v", err)
	}
}

func TestHandshake(t *testing.T) {
	a := newAdapter(t)
	for _, tc := range []struct {
		name, query string
		status      int
		body        string
	}{
		{"right", "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444", 200, "1158201444"},
		{"wrong token", "hub.mode=subscribe&hub.verify_token=verify-mf&hub.challenge=1158201444", 403, ""},
		{"token prefix", "hub.mode=subscribe&hub.verify_token=verify&hub.challenge=1", 403, ""},
		{"no token", "hub.mode=subscribe&hub.challenge=1", 403, ""},
		{"two tokens", "hub.mode=subscribe&hub.verify_token=x&hub.verify_token=verify-me&hub.challenge=1", 403, ""},
		{"other mode", "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1", 403, ""},
		{"no mode", "hub.verify_token=verify-me&hub.challenge=1", 403, ""},
		{"no challenge", "hub.mode=subscribe&hub.verify_token=verify-me", 400, ""},
		{"html challenge", "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=%3Cscript%3E%20x", 400, ""},
		{"markup challenge", "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=%3Cb%3E", 400, ""},
		{"quote challenge", "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=a%22b", 400, ""},
		{"token challenge", "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=aZ09-_.~", 200, "aZ09-_.~"},
		{"long challenge", "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=" + strings.Repeat("1", MaxChallenge+1), 400, ""},
		{"longest challenge", "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=" + strings.Repeat("1", MaxChallenge), 200, strings.Repeat("1", MaxChallenge)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse("https://sms.example.com/webhooks/meta?" + tc.query)
			status, ct, body := a.Handshake(&adapters.Request{Method: "GET", URL: u, Header: http.Header{}})
			if status != tc.status || !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("Handshake = %d %s %q, want %d text/plain", status, ct, body, tc.status)
			}
			if tc.status == 200 && string(body) != tc.body {
				t.Errorf("body = %q, want %q", body, tc.body)
			}
			if tc.status != 200 && strings.Contains(string(body), "1158201444") {
				t.Errorf("a refused handshake echoed the challenge: %q", body)
			}
		})
	}
}

// change wraps messages (JSON) in a notification for phone number id 111.
func change(field, value string) string {
	return `{"object":"whatsapp_business_account","entry":[{"id":"9","changes":[{"field":"` + field + `","value":` + value + `}]}]}`
}

func value(messages string) string {
	return `{"messaging_product":"whatsapp","metadata":{"display_phone_number":"+1 555 098 4277","phone_number_id":"111"},"messages":[` + messages + `]}`
}

func TestParse(t *testing.T) {
	a := newAdapter(t)
	at := time.Unix(1694427240, 0).UTC()
	wa := func(id, from, text string) adapters.Inbound {
		return adapters.Inbound{Provider: "meta", Channel: adapters.ChannelWhatsApp, MessageID: id, From: from, ToID: "111", Text: text, ReceivedAt: at}
	}
	hidden := wa("wamid.3", "US.13491208655302741918", "482913")
	hidden.SenderHidden = true
	fwd := wa("wamid.4", "+60173526233", "482913")
	fwd.Forwarded = true
	noTime := wa("wamid.5", "+60173526233", "482913")
	noTime.ReceivedAt = time.Unix(1_800_000_000, 0).UTC()
	for _, tc := range []struct {
		name, body string
		want       []adapters.Inbound
	}{
		{"reference sample", sample, []adapters.Inbound{{Provider: "meta", Channel: "whatsapp", MessageID: "wamid.HBgLNjAxNzM1MjYyMzMVAgASGBQzQUI0NkE4NjM1QTU2NjVGOURGQgA=",
			From: "+60173526233", ToID: "114896151713920", Text: "Verify 482913", ReceivedAt: at}}},
		{"text", change("messages", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"text","text":{"body":"482913"}}`)),
			[]adapters.Inbound{wa("wamid.1", "+60173526233", "482913")}},
		{"button reply", change("messages", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"b1","title":"482913"}}}`)),
			[]adapters.Inbound{wa("wamid.1", "+60173526233", "482913")}},
		{"quick reply button", change("messages", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"button","button":{"payload":"p","text":"482913"}}`)),
			[]adapters.Inbound{wa("wamid.1", "+60173526233", "482913")}},
		{"list reply", change("messages", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"l","title":"482913"}}}`)), nil},
		{"image", change("messages", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"image","image":{"caption":"482913","id":"m"}}`)), nil},
		{"user_changed_number", change("messages", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"system","system":{"body":"User A changed from 60173526233 to 60173526234","new_wa_id":"60173526234","type":"user_changed_number"}}`)), nil},
		{"group message", change("messages", value(`{"from":"60173526233","group_id":"120363","id":"wamid.1","timestamp":"1694427240","type":"text","text":{"body":"482913"}}`)), nil},
		{"statuses only", change("messages", `{"messaging_product":"whatsapp","metadata":{"phone_number_id":"111"},"statuses":[{"id":"wamid.x","status":"delivered","timestamp":"1694427240","recipient_id":"60173526233"}]}`), nil},
		{"other field", change("account_update", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"text","text":{"body":"482913"}}`)), nil},
		{"other object", strings.Replace(change("messages", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"text","text":{"body":"482913"}}`)), "whatsapp_business_account", "page", 1), nil},
		{"username only", change("messages", value(`{"from_user_id":"US.13491208655302741918","from_parent_user_id":"US.ENT.1","id":"wamid.3","timestamp":"1694427240","type":"text","text":{"body":"482913"}}`)),
			[]adapters.Inbound{hidden}},
		{"from is a user id", change("messages", value(`{"from":"US.13491208655302741918","id":"wamid.3","timestamp":"1694427240","type":"text","text":{"body":"482913"}}`)),
			[]adapters.Inbound{hidden}},
		{"forwarded", change("messages", value(`{"from":"60173526233","id":"wamid.4","timestamp":"1694427240","type":"text","text":{"body":"482913"},"context":{"forwarded":true}}`)),
			[]adapters.Inbound{fwd}},
		{"frequently forwarded", change("messages", value(`{"from":"60173526233","id":"wamid.4","timestamp":"1694427240","type":"text","text":{"body":"482913"},"context":{"frequently_forwarded":true}}`)),
			[]adapters.Inbound{fwd}},
		{"no timestamp", change("messages", value(`{"from":"60173526233","id":"wamid.5","type":"text","text":{"body":"482913"}}`)),
			[]adapters.Inbound{noTime}},
		{"escaped unicode", change("messages", value(`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"text","text":{"body":"V\u00e9rifier \u0034\u0038\u0032913"}}`)),
			[]adapters.Inbound{wa("wamid.1", "+60173526233", "Vérifier 482913")}},
		{"two messages, a status and a group message in one change", change("messages", `{"metadata":{"phone_number_id":"111"},"statuses":[{"id":"wamid.s","status":"read"}],"messages":[`+
			`{"from":"60173526233","id":"wamid.1","timestamp":"1694427240","type":"text","text":{"body":"a"}},`+
			`{"from":"60173526233","group_id":"g","id":"wamid.g","timestamp":"1694427240","type":"text","text":{"body":"g"}},`+
			`{"from":"447700900001","id":"wamid.2","timestamp":"1694427240","type":"text","text":{"body":"b"}}]}`),
			[]adapters.Inbound{wa("wamid.1", "+60173526233", "a"), wa("wamid.2", "+447700900001", "b")}},
		{"two entries and two changes", `{"object":"whatsapp_business_account","entry":[` +
			`{"id":"1","changes":[{"field":"messages","value":` + value(`{"from":"1555","id":"wamid.1","timestamp":"1694427240","type":"text","text":{"body":"a"}}`) + `},` +
			`{"field":"messages","value":{"metadata":{"phone_number_id":"222"},"messages":[{"from":"1556","id":"wamid.2","timestamp":"1694427240","type":"text","text":{"body":"b"}}]}}]},` +
			`{"id":"2","changes":[{"field":"messages","value":` + value(`{"from":"1557","id":"wamid.3","timestamp":"1694427240","type":"text","text":{"body":"c"}}`) + `}]}]}`,
			[]adapters.Inbound{wa("wamid.1", "+1555", "a"), {Provider: "meta", Channel: "whatsapp", MessageID: "wamid.2", From: "+1556", ToID: "222", Text: "b", ReceivedAt: at}, wa("wamid.3", "+1557", "c")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins, err := a.Parse(&adapters.Request{Method: "POST", Body: []byte(tc.body)})
			if err != nil {
				t.Fatal(err)
			}
			if len(ins) != len(tc.want) {
				t.Fatalf("Parse = %+v, want %+v", ins, tc.want)
			}
			for i := range ins {
				if string(ins[i].Raw) != tc.body {
					t.Errorf("message %d: Raw is not the body", i)
				}
				ins[i].Raw = nil
				if !reflect.DeepEqual(ins[i], tc.want[i]) {
					t.Errorf("message %d:\n got  %+v\n want %+v", i, ins[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	a := newAdapter(t)
	for name, body := range map[string]string{
		"not json":       `{"object":`,
		"no id":          change("messages", value(`{"from":"1555","timestamp":"1","type":"text","text":{"body":"a"}}`)),
		"no sender":      change("messages", value(`{"id":"wamid.1","timestamp":"1","type":"text","text":{"body":"a"}}`)),
		"no number id":   change("messages", `{"metadata":{"display_phone_number":"15550984277"},"messages":[{"from":"1555","id":"wamid.1","type":"text","text":{"body":"a"}}]}`),
		"entry not list": `{"object":"whatsapp_business_account","entry":{}}`,
		"one bad of two": change("messages", value(`{"from":"1555","id":"wamid.1","type":"text","text":{"body":"a"}},{"from":"1555","type":"text","text":{"body":"b"}}`)),
	} {
		if ins, err := a.Parse(&adapters.Request{Body: []byte(body)}); !errors.Is(err, adapters.ErrMalformed) || ins != nil {
			t.Errorf("%s: Parse = %v, %v; want malformed and nothing", name, ins, err)
		}
	}
}

func TestSignRoundTrip(t *testing.T) {
	a := newAdapter(t)
	target, _ := url.Parse("https://sms.example.com/webhooks/meta")
	now := time.Unix(1_800_000_100, 0)
	for _, m := range []adapters.Inbound{
		{From: "+60173526233", ToID: "111", To: "+15550984277", Text: "Acme code 482913", MessageID: "wamid.x"},
		{From: "US.134912", ToID: "111", Text: "482913", SenderHidden: true, Forwarded: true},
	} {
		r, err := a.Sign(m, target, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Verify(r); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		ins, err := a.Parse(r)
		if err != nil || len(ins) != 1 {
			t.Fatal(ins, err)
		}
		got := ins[0]
		if got.From != m.From || got.ToID != m.ToID || got.Text != m.Text || got.SenderHidden != m.SenderHidden || got.Forwarded != m.Forwarded ||
			got.Channel != adapters.ChannelWhatsApp || !got.ReceivedAt.Equal(now) || got.MessageID == "" || (m.MessageID != "" && got.MessageID != m.MessageID) {
			t.Errorf("round trip of %+v = %+v", m, got)
		}
	}
	if _, err := a.Sign(adapters.Inbound{From: "+1555", To: "+15550984277", Text: "x"}, target, now); err == nil {
		t.Error("Sign without ToID succeeded")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add(change("messages", value(`{"from_user_id":"US.1","id":"wamid.3","type":"text","text":{"body":"1"}}`)))
	f.Add(change("messages", value(`{"from":"1","id":"w","type":"interactive","interactive":{"type":"button_reply","button_reply":{"title":"1"}}}`)))
	for _, b := range adapterstest.FixtureBodies("whatsapp") {
		f.Add(b)
	}
	a, _ := New(Config{Name: "meta", AppSecret: "s", VerifyToken: "t"})
	f.Fuzz(func(t *testing.T, body string) {
		ins, err := a.Parse(&adapters.Request{Body: []byte(body)})
		if err != nil {
			if !errors.Is(err, adapters.ErrMalformed) || ins != nil {
				t.Fatalf("Parse = %v, %v", ins, err)
			}
			return
		}
		for _, in := range ins {
			if in.MessageID == "" || in.ToID == "" || in.From == "" || in.To != "" || in.Channel != adapters.ChannelWhatsApp {
				t.Fatalf("incomplete inbound %+v", in)
			}
		}
	})
}
