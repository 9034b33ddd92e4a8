// Package sns authenticates and parses AWS SNS HTTP(S) notifications that
// carry two-way SMS from AWS End User Messaging (formerly Pinpoint SMS).
//
// Signature scheme (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html):
// the envelope's Signature is RSA PKCS#1 v1.5 — SHA1 for SignatureVersion 1,
// SHA256 for 2 — over "Key\nValue\n" for the fields of the message type in
// a fixed order. The certificate is fetched only from an https URL on an
// SNS host (sns.<region>.amazonaws.com[.cn]) with a .pem path, and cached;
// the TLS connection to that host is what vouches for it, as in AWS's own
// validators. TopicArn must be one of the configured topic_arns.
//
// SubscriptionConfirmation is confirmed by the gateway (SubscribeURL, after
// the same checks); the SMS itself is a JSON document inside Message.
package sns

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mogate/mogate/adapters"
)

// Config is an sns provider entry.
type Config struct {
	Name      string
	TopicARNs []string
	// HTTP fetches signing certificates; nil: a client with a 10 s timeout.
	HTTP *http.Client
	// PrivateKey (PEM, RSA) and CertURL are only for playing SNS: Resign.
	PrivateKey string
	CertURL    string
	Now        func() time.Time
}

// Adapter handles the topics of one configuration.
type Adapter struct {
	name   string
	topics []string
	http   *http.Client
	key    *rsa.PrivateKey
	cert   string
	now    func() time.Time

	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if len(c.TopicARNs) == 0 {
		return nil, errors.New("sns: topic_arns is required")
	}
	a := &Adapter{name: c.Name, topics: c.TopicARNs, http: c.HTTP, now: c.Now, cert: c.CertURL, certs: map[string]*x509.Certificate{}}
	if a.http == nil {
		a.http = &http.Client{Timeout: 10 * time.Second}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if c.PrivateKey != "" {
		block, _ := pem.Decode([]byte(c.PrivateKey))
		if block == nil {
			return nil, errors.New("sns: private key is not PEM")
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if err != nil || !ok {
			return nil, errors.New("sns: private key is not an RSA key")
		}
		a.key = rk
	}
	return a, nil
}

// Envelope is an SNS HTTP message.
type Envelope struct {
	Type             string `json:"Type"`
	MessageID        string `json:"MessageId"`
	Token            string `json:"Token,omitempty"`
	TopicArn         string `json:"TopicArn"`
	Subject          string `json:"Subject,omitempty"`
	Message          string `json:"Message"`
	SubscribeURL     string `json:"SubscribeURL,omitempty"`
	Timestamp        string `json:"Timestamp"`
	SignatureVersion string `json:"SignatureVersion"`
	Signature        string `json:"Signature"`
	SigningCertURL   string `json:"SigningCertURL"`
	UnsubscribeURL   string `json:"UnsubscribeURL,omitempty"`
}

var snsHost = regexp.MustCompile(`^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$`)

// ValidSNSURL reports whether u is an https URL on an SNS host; with pem,
// its path must also end in .pem.
func ValidSNSURL(raw string, pem bool) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && snsHost.MatchString(u.Hostname()) && u.Port() == "" &&
		u.User == nil && (!pem || strings.HasSuffix(u.Path, ".pem"))
}

// StringToSign builds the signed string of e.
func StringToSign(e *Envelope) string {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	add("Message", e.Message)
	add("MessageId", e.MessageID)
	if e.Type == "Notification" {
		if e.Subject != "" {
			add("Subject", e.Subject)
		}
	} else {
		add("SubscribeURL", e.SubscribeURL)
	}
	add("Timestamp", e.Timestamp)
	if e.Type != "Notification" {
		add("Token", e.Token)
	}
	add("TopicArn", e.TopicArn)
	add("Type", e.Type)
	return b.String()
}

func hashOf(version string) (crypto.Hash, bool) {
	switch version {
	case "1":
		return crypto.SHA1, true
	case "2":
		return crypto.SHA256, true
	}
	return 0, false
}

func digest(h crypto.Hash, s string) []byte {
	if h == crypto.SHA1 {
		d := sha1.Sum([]byte(s))
		return d[:]
	}
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func decode(body []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Verify checks topic, certificate URL, certificate and signature.
func (a *Adapter) Verify(r *adapters.Request) error {
	e, err := decode(r.Body)
	if err != nil {
		return adapters.Unauthenticated("not an SNS message")
	}
	if e.Signature == "" {
		return adapters.Missing("SNS Signature")
	}
	if !slices.Contains(a.topics, e.TopicArn) {
		return adapters.Unauthenticated("topic not in topic_arns")
	}
	h, ok := hashOf(e.SignatureVersion)
	if !ok {
		return adapters.Unauthenticated("unknown SignatureVersion")
	}
	if !ValidSNSURL(e.SigningCertURL, true) {
		return adapters.Unauthenticated("SigningCertURL is not an https .pem URL on an SNS host")
	}
	if e.Type != "Notification" && !ValidSNSURL(e.SubscribeURL, false) {
		return adapters.Unauthenticated("SubscribeURL is not an https URL on an SNS host")
	}
	cert, err := a.certificate(e.SigningCertURL)
	if err != nil {
		return adapters.Unauthenticated("signing certificate unavailable")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	sig, err := base64.StdEncoding.DecodeString(e.Signature)
	if !ok || err != nil || rsa.VerifyPKCS1v15(pub, h, digest(h, StringToSign(e)), sig) != nil {
		return adapters.Unauthenticated("signature mismatch")
	}
	return nil
}

// certificate fetches (once) and parses the certificate at u.
func (a *Adapter) certificate(u string) (*x509.Certificate, error) {
	a.mu.Lock()
	c, ok := a.certs[u]
	a.mu.Unlock()
	if !ok {
		resp, err := a.http.Get(u)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return nil, fmt.Errorf("sns: certificate: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("sns: certificate: status %d", resp.StatusCode)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, errors.New("sns: certificate is not PEM")
		}
		if c, err = x509.ParseCertificate(block.Bytes); err != nil {
			return nil, err
		}
		a.mu.Lock()
		if len(a.certs) > 64 {
			clear(a.certs)
		}
		a.certs[u] = c
		a.mu.Unlock()
	}
	if now := a.now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, errors.New("sns: certificate outside its validity")
	}
	return c, nil
}

// SubscribeURL returns the URL that confirms a verified
// SubscriptionConfirmation (the gateway GETs it), or "" for other messages.
func (a *Adapter) SubscribeURL(r *adapters.Request) string {
	e, err := decode(r.Body)
	if err != nil || e.Type != "SubscriptionConfirmation" || !ValidSNSURL(e.SubscribeURL, false) {
		return ""
	}
	return e.SubscribeURL
}

type sms struct {
	OriginationNumber string `json:"originationNumber"`
	DestinationNumber string `json:"destinationNumber"`
	MessageBody       string `json:"messageBody"`
	InboundMessageID  string `json:"inboundMessageId"`
}

// Parse reads the two-way SMS inside a Notification; confirmations yield
// nothing.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	e, err := decode(r.Body)
	if err != nil {
		return nil, adapters.Malformed("json: " + err.Error())
	}
	if e.Type != "Notification" {
		return nil, nil
	}
	var m sms
	if err := json.Unmarshal([]byte(e.Message), &m); err != nil {
		return nil, adapters.Malformed("Message is not the two-way SMS JSON")
	}
	id := strings.TrimSpace(m.InboundMessageID)
	if id == "" {
		id = strings.TrimSpace(e.MessageID)
	}
	from, to := adapters.E164(m.OriginationNumber), adapters.E164(m.DestinationNumber)
	switch {
	case id == "":
		return nil, adapters.Malformed("no inboundMessageId or MessageId")
	case from == "":
		return nil, adapters.Malformed("no originationNumber")
	case to == "":
		return nil, adapters.Malformed("no destinationNumber")
	}
	received := a.now().UTC()
	if t, err := time.Parse(time.RFC3339Nano, e.Timestamp); err == nil {
		received = t.UTC()
	}
	return []adapters.Inbound{{Provider: a.name, MessageID: id, From: from, To: to, Text: m.MessageBody, ReceivedAt: received, Raw: r.Body}}, nil
}

// Resign signs the envelope in r's body (SignatureVersion 2, the
// configured certificate URL) with the private key.
func (a *Adapter) Resign(r *adapters.Request, _ time.Time) error {
	if a.key == nil {
		return errors.New("sns: signing needs the topic's private key, which only AWS has")
	}
	e, err := decode(r.Body)
	if err != nil {
		return err
	}
	e.SignatureVersion = "2"
	if a.cert != "" {
		e.SigningCertURL = a.cert
	}
	sig, err := rsa.SignPKCS1v15(nil, a.key, crypto.SHA256, digest(crypto.SHA256, StringToSign(e)))
	if err != nil {
		return err
	}
	e.Signature = base64.StdEncoding.EncodeToString(sig)
	r.Body, err = json.Marshal(e)
	return err
}

// Sign returns the Notification SNS would send for m.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = adapters.RandomHex(16)
	}
	msg, _ := json.Marshal(map[string]string{"originationNumber": m.From, "destinationNumber": m.To, "messageKeyword": "KEYWORD",
		"messageBody": m.Text, "inboundMessageId": id, "previousPublishedMessageId": adapters.RandomHex(16)})
	body, err := json.Marshal(Envelope{Type: "Notification", MessageID: adapters.RandomHex(16), TopicArn: a.topics[0], Message: string(msg),
		Timestamp: now.UTC().Format("2006-01-02T15:04:05.000Z"), UnsubscribeURL: "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"})
	if err != nil {
		return nil, err
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"text/plain; charset=UTF-8"}, "X-Amz-Sns-Message-Type": {"Notification"}}, Body: body}
	return r, a.Resign(r, now)
}
