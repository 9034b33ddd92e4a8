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
	if other, _ := c.parse("https://other.example.com", "/webhooks/twilio?x=1"); other == q || other.Host != "other.example.com" {
		t.Errorf("another base got the URL of the first: %v", other)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = c.parse(base, "/webhooks/twilio?x=1") }); n != 0 {
		t.Errorf("a kept URI: %v allocations, want 0", n)
	}
}

// TestHeaderValuesBounded: one shared value per content type, read
// without allocating; past maxHeaderValues a fresh value each time, so
// the table cannot grow; an append to a shared value copies it.
func TestHeaderValuesBounded(t *testing.T) {
	var h headerValues
	a := h.get("text/xml")
	if b := h.get("text/xml"); &a[0] != &b[0] || len(a) != 1 || a[0] != "text/xml" {
		t.Fatalf("get = %q then %q, not one shared value", a, b)
	}
	if n := testing.AllocsPerRun(100, func() { _ = h.get("text/xml") }); n != 0 {
		t.Errorf("a known value: %v allocations, want 0", n)
	}
	if c := append(a, "x"); &c[0] == &a[0] {
		t.Error("an append wrote into the shared value")
	}
	for i := range 2 * maxHeaderValues {
		_ = h.get(string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	if n := len(*h.m.Load()); n != maxHeaderValues {
		t.Errorf("%d values held, want %d", n, maxHeaderValues)
	}
}
