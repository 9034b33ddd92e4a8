package adapters

import (
	"errors"
	"net/url"
	"testing"
)

func TestE164(t *testing.T) {
	cases := map[string]string{
		"14155550100": "+14155550100", "+14155550100": "+14155550100", " +1 (415) 555-0100 ": "+14155550100",
		"0044 7700 900123": "+447700900123", "MyBank": "MyBank", "": "", "+": "+", "12ab": "12ab",
	}
	for in, want := range cases {
		if got := E164(in); got != want {
			t.Errorf("E164(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	if err := Missing("X"); !errors.Is(err, ErrMissingSignature) || !errors.Is(err, ErrUnauthenticated) {
		t.Error("Missing")
	}
	if err := Unauthenticated("x"); errors.Is(err, ErrMissingSignature) || !errors.Is(err, ErrUnauthenticated) {
		t.Error("Unauthenticated")
	}
	if err := Malformed("x"); !errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnauthenticated) {
		t.Error("Malformed")
	}
}

func TestFirstValues(t *testing.T) {
	v, _ := url.ParseQuery("a=1&b=2&b=3")
	if _, err := FirstValues(v, "a", "b"); !errors.Is(err, ErrMalformed) {
		t.Error("repeated key accepted")
	}
	if m, err := FirstValues(v, "a", "c"); err != nil || m["a"] != "1" || len(m) != 1 {
		t.Errorf("FirstValues = %v %v", m, err)
	}
}
