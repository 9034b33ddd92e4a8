package gateway

import "testing"

// TestSignedURLParsedOnce: a provider entry's webhooks of one request URI
// share one parsed URL; another URI is parsed anew (and kept in its
// place), an unparseable one refused and the last good one kept.
func TestSignedURLParsedOnce(t *testing.T) {
	var c signedURL
	const base = "https://sms.example.com"
	a, err := c.parse(base, "/webhooks/twilio")
	if err != nil || a.String() != base+"/webhooks/twilio" {
		t.Fatalf("parse = %v, %v", a, err)
	}
	if again, _ := c.parse(base, "/webhooks/twilio"); again != a {
		t.Error("the same request URI was parsed again")
	}
	q, err := c.parse(base, "/webhooks/twilio?x=1")
	if err != nil || q == a || q.RawQuery != "x=1" {
		t.Fatalf("another URI: %v, %v", q, err)
	}
	if _, err := c.parse(base, "/webhooks/twilio%zz"); err == nil {
		t.Error("an unparseable URI was accepted")
	}
	if again, _ := c.parse(base, "/webhooks/twilio?x=1"); again != q {
		t.Error("the last good URI was not kept")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = c.parse(base, "/webhooks/twilio?x=1") }); n != 0 {
		t.Errorf("a kept URI: %v allocations, want 0", n)
	}
}
