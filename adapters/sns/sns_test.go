package sns

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
	"github.com/mogate/mogate/adapters/sns/snstest"
)

const topic = "arn:aws:sns:us-east-1:123456789012:inbound-sms"

func setup(t *testing.T) (*Adapter, *rsa.PrivateKey, *snstest.AWS) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	aws := &snstest.AWS{Cert: snstest.Certificate(key)}
	a, err := New(Config{Name: "sns", TopicARNs: []string{topic}, HTTP: &http.Client{Transport: aws}})
	if err != nil {
		t.Fatal(err)
	}
	return a, key, aws
}

func sign(t *testing.T, key *rsa.PrivateKey, e *Envelope) *adapters.Request {
	t.Helper()
	h := crypto.SHA256
	if e.SignatureVersion == "1" {
		h = crypto.SHA1
	}
	sig, err := rsa.SignPKCS1v15(nil, key, h, digest(h, StringToSign(e)))
	if err != nil {
		t.Fatal(err)
	}
	e.Signature = base64.StdEncoding.EncodeToString(sig)
	b, _ := json.Marshal(e)
	return &adapters.Request{Method: "POST", Header: http.Header{"Content-Type": {"text/plain; charset=UTF-8"}}, Body: b}
}

// The docs' two-way SMS payload (from the provider's public docs) inside its envelope.
func notification(version string) *Envelope {
	return &Envelope{
		Type: "Notification", MessageID: "0c6a8d1e-5f0b-5d6e-9c62-8f2b9c3e7a11", TopicArn: topic,
		Message:   `{"originationNumber":"+14255550182","destinationNumber":"+12125550101","messageKeyword":"JOIN","messageBody":"EXAMPLE","inboundMessageId":"cae173d2-66b9-564c-8309-21f858e9fb84","previousPublishedMessageId":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}`,
		Timestamp: "2024-05-01T10:00:00.000Z", SignatureVersion: version,
		SigningCertURL: "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
		UnsubscribeURL: "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
	}
}

func TestVerify(t *testing.T) {
	a, key, aws := setup(t)
	for _, v := range []string{"1", "2"} {
		if err := a.Verify(sign(t, key, notification(v))); err != nil {
			t.Fatalf("SignatureVersion %s: %v", v, err)
		}
	}
	if aws.Fetches() != 1 {
		t.Errorf("certificate fetched %d times, want once (cached)", aws.Fetches())
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	mutate := func(f func(e *Envelope)) *adapters.Request {
		e := notification("2")
		f(e)
		return sign(t, key, e)
	}
	cases := map[string]*adapters.Request{
		"other key":       sign(t, other, notification("2")),
		"other topic":     mutate(func(e *Envelope) { e.TopicArn = "arn:aws:sns:us-east-1:123456789012:other" }),
		"http cert URL":   mutate(func(e *Envelope) { e.SigningCertURL = "http://sns.us-east-1.amazonaws.com/x.pem" }),
		"foreign host":    mutate(func(e *Envelope) { e.SigningCertURL = "https://sns.us-east-1.amazonaws.com.evil.example/x.pem" }),
		"not .pem":        mutate(func(e *Envelope) { e.SigningCertURL = "https://sns.us-east-1.amazonaws.com/x.txt" }),
		"port":            mutate(func(e *Envelope) { e.SigningCertURL = "https://sns.us-east-1.amazonaws.com:8443/x.pem" }),
		"unknown version": mutate(func(e *Envelope) { e.SignatureVersion = "3" }),
		"bad confirmation": mutate(func(e *Envelope) {
			e.Type = "SubscriptionConfirmation"
			e.SubscribeURL = "https://evil.example/confirm"
		}),
	}
	for name, r := range cases {
		if err := a.Verify(r); !errors.Is(err, adapters.ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	tampered := sign(t, key, notification("2"))
	tampered.Body = []byte(strings.Replace(string(tampered.Body), "EXAMPLE", "EXAMPLF", 1))
	if err := a.Verify(tampered); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Errorf("tampered: %v", err)
	}
	if err := a.Verify(&adapters.Request{Body: []byte(`{"Type":"Notification"}`)}); !errors.Is(err, adapters.ErrMissingSignature) {
		t.Errorf("unsigned: %v", err)
	}
}

func TestSubscriptionConfirmation(t *testing.T) {
	a, key, _ := setup(t)
	e := notification("2")
	e.Type, e.Token, e.SubscribeURL = "SubscriptionConfirmation", "tok", "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok"
	r := sign(t, key, e)
	if err := a.Verify(r); err != nil {
		t.Fatal(err)
	}
	if got := a.SubscribeURL(r); got != e.SubscribeURL {
		t.Fatalf("SubscribeURL = %q", got)
	}
	if ins, err := a.Parse(r); err != nil || len(ins) != 0 {
		t.Fatalf("Parse(confirmation) = %v %v", ins, err)
	}
	if a.SubscribeURL(sign(t, key, notification("2"))) != "" {
		t.Fatal("notification asks for confirmation")
	}
}

func TestParse(t *testing.T) {
	a, key, _ := setup(t)
	ins, err := a.Parse(sign(t, key, notification("2")))
	if err != nil || len(ins) != 1 {
		t.Fatal(ins, err)
	}
	if in := ins[0]; in.From != "+14255550182" || in.To != "+12125550101" || in.Text != "EXAMPLE" || in.MessageID != "cae173d2-66b9-564c-8309-21f858e9fb84" {
		t.Errorf("Parse = %+v", in)
	}
	bad := notification("2")
	bad.Message = "not json"
	if _, err := a.Parse(sign(t, key, bad)); !errors.Is(err, adapters.ErrMalformed) {
		t.Errorf("bad Message: %v", err)
	}
	noFrom := notification("2")
	noFrom.Message = `{"destinationNumber":"+1","messageBody":"x","inboundMessageId":"i"}`
	if _, err := a.Parse(sign(t, key, noFrom)); !errors.Is(err, adapters.ErrMalformed) {
		t.Errorf("no sender: %v", err)
	}
}

func TestSignRoundTrip(t *testing.T) {
	_, key, aws := setup(t)
	der := x509.MarshalPKCS1PrivateKey(key)
	signer, err := New(Config{Name: "sns", TopicARNs: []string{topic}, HTTP: &http.Client{Transport: aws},
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})),
		CertURL:    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("https://x.example/webhooks/sns")
	r, err := signer.Sign(adapters.Inbound{From: "+14255550182", To: "+12125550101", Text: "code 1234"}, u, time.Now())
	if err != nil || signer.Verify(r) != nil {
		t.Fatalf("round trip: %v %v", err, signer.Verify(r))
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("sns") {
		f.Add(b)
	}
	b, _ := json.Marshal(notification("2"))
	f.Add(string(b))
	a, _ := New(Config{TopicARNs: []string{topic}, HTTP: &http.Client{Transport: &snstest.AWS{}}})
	f.Fuzz(func(t *testing.T, body string) {
		r := &adapters.Request{Body: []byte(body)}
		ins, err := a.Parse(r)
		if err != nil && !errors.Is(err, adapters.ErrMalformed) {
			t.Fatal(err)
		}
		for _, in := range ins {
			if in.From == "" || in.To == "" || in.MessageID == "" {
				t.Fatalf("accepted %+v", in)
			}
		}
		if a.Verify(r) == nil {
			t.Fatal("unsigned input verified")
		}
	})
}
