package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/twilio"
	"github.com/mogate/mogate/cmd/mogate/app"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway"
	"github.com/mogate/mogate/gateway/client"
)

const (
	whsec   = "whsec_Y2xpZW50LWV2ZW50cy1zZWNyZXQtMDEyMzQ1"
	twToken = "tok-0123456789"
	public  = "https://sms.example.com"
)

type delivery struct {
	header http.Header
	body   []byte
}

// TestEventsFromMogate runs a real mogate (store, outbox, HTTP) until it has
// sent one event of every type to a receiver, then checks each with
// VerifyEvent and decodes its body into this package's struct for the type
// with unknown fields refused: the structs hold every field mogate sends.
func TestEventsFromMogate(t *testing.T) {
	var mu sync.Mutex
	var got []delivery
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{r.Header.Clone(), b})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	base := startMogate(t, `
public_url: `+public+`
api_keys: [{name: app, key: `+key+`, webhook_url: "`+rcv.URL+`/hooks", webhook_secret: `+whsec+`, unmatched_events: true}]
providers: [{name: tw, type: twilio, auth_token: `+twToken+`}]
numbers: [{number: "+14155550100", provider: tw}]
events: {allow_private_destinations: true}
`)
	ctx := context.Background()
	c := client.New(base, key, nil)
	n := 0
	sms := func(from, text string) {
		t.Helper()
		n++
		tw, _ := twilio.New(twilio.Config{Name: "tw", AuthToken: twToken})
		u, _ := url.Parse(public + "/webhooks/tw")
		r, err := tw.Sign(adapters.Inbound{MessageID: "SM" + strconv.Itoa(n), From: from, To: "+14155550100", Text: text}, u, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(r.Method, base+r.URL.RequestURI(), bytes.NewReader(r.Body))
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("webhook: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	create := func(r client.CreateRequest) client.Verification {
		t.Helper()
		v, err := c.Create(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	verified := create(client.CreateRequest{Number: "+14155550121", Metadata: json.RawMessage(`{"order":7}`), RedirectURL: "https://shop.example.com/done"})
	sms("+14155550121", verified.Code)
	failed := create(client.CreateRequest{Number: "+14155550122"})
	for range 3 {
		sms("+14155550122", "000000")
	}
	cancelled := create(client.CreateRequest{Number: "+14155550123", CallbackURL: rcv.URL + "/cb"})
	if _, err := c.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	expired := create(client.CreateRequest{Number: "+14155550124", TTLSeconds: 1})
	sms("+14155550125", "hello?") // nobody waits for this sender: unmatched
	unmatched := "SM" + strconv.Itoa(n)
	req, _ := http.NewRequest(http.MethodPost, base+"/otp/reverse/initiate", bytes.NewReader([]byte(`{"number": "+14155550126", "factor": "4321"}`)))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("initiate: %v %v", resp, err)
	}
	var initiated struct {
		Data struct {
			OTPID string `json:"otp_id"`
		} `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&initiated)
	resp.Body.Close()
	sms("+14155550126", "4321")

	want := map[string]string{ // type: the id its data names
		client.EventVerified: verified.ID, client.EventFailed: failed.ID, client.EventCancelled: cancelled.ID,
		client.EventExpired: expired.ID, client.EventUnmatched: unmatched, client.EventOTPReverseVerified: initiated.Data.OTPID,
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		l := len(got)
		mu.Unlock()
		if l >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events of %d after 20s", l, len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	for _, d := range got {
		ev, err := client.VerifyEvent(whsec, d.header, d.body)
		if err != nil {
			t.Fatalf("VerifyEvent: %v\n%v\n%s", err, d.header, d.body)
		}
		seen[ev.Type] = true
		var id string
		switch ev.Type {
		case client.EventUnmatched:
			strict[client.UnmatchedEvent](t, d.body)
			id = ev.Unmatched.MessageID
			if ev.Unmatched.Text != "hello?" || ev.Unmatched.From != "+14155550125" || ev.Unmatched.Provider != "tw" || ev.Unmatched.ReceivedAt.IsZero() {
				t.Errorf("unmatched = %+v", ev.Unmatched)
			}
		case client.EventOTPReverseVerified:
			strict[client.ContiguityEvent](t, d.body)
			id = ev.OTP.OTPID
			if ev.OTP.Status != "verified" || ev.OTP.Number != "+14155550126" || ev.ID == "" ||
				ev.OTP.Channel != client.ChannelSMS || ev.OTP.RouteTo != "+14155550100" || ev.OTP.Signals == nil || ev.OTP.Signals.SenderCountry != "US" {
				t.Errorf("otp = %+v (event id %q)", ev.OTP, ev.ID)
			}
		default:
			strict[client.VerificationEvent](t, d.body)
			id = ev.Verification.ID
			if "verification."+ev.Verification.Status != ev.Type || ev.Verification.Object != "verification" {
				t.Errorf("%s: %+v", ev.Type, ev.Verification)
			}
			if ev.Type == client.EventVerified && (ev.Verification.VerifiedNumber != "+14155550121" || ev.Verification.VerifiedAt == nil || string(ev.Verification.Metadata) != `{"order":7}` ||
				ev.Verification.Channel != client.ChannelSMS || ev.Verification.Signals == nil || ev.Verification.Signals.Channel != client.ChannelSMS) {
				t.Errorf("verified: %+v", ev.Verification)
			}
		}
		if id != want[ev.Type] {
			t.Errorf("%s names %q, want %q:\n%s", ev.Type, id, want[ev.Type], d.body)
		}
		if ev.ID == "" || ev.Timestamp.IsZero() {
			t.Errorf("%s: id %q, timestamp %v", ev.Type, ev.ID, ev.Timestamp)
		}
		if _, err := client.VerifyEvent("whsec_b3RoZXItc2VjcmV0LXZhbHVlLTEyMzQ=", d.header, d.body); err == nil {
			t.Errorf("%s verifies with another secret", ev.Type)
		}
	}
	for typ := range want {
		if !seen[typ] {
			t.Errorf("no %s event", typ)
		}
	}
}

// strict decodes body into a T, refusing fields T lacks.
func strict[T any](t *testing.T, body []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		t.Errorf("%T misses a field mogate sends: %v\n%s", v, err, body)
	}
}

// startMogate serves configuration y as `mogate serve` does (sweeper and
// outbox running) on a loopback port until the test ends.
func startMogate(t *testing.T, y string) string {
	t.Helper()
	cfg, err := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := app.New(gateway.Options{Config: cfg, Outbox: gateway.OutboxOptions{BaseDelay: 10 * time.Millisecond}}, true)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String()
}
