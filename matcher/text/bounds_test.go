package text

import (
	"strings"
	"testing"
)

// TestCaptureCandidatesBounded: whatever the text, capture matching
// compares at most 2 per token, and a text of more than maxCaptureTokens
// tokens offers nothing.
func TestCaptureCandidatesBounded(t *testing.T) {
	var codes []string
	for i := range 20 {
		codes = append(codes, strings.Repeat(string(rune('1'+i%9)), 6))
	}
	spaced := func(s string) string { return strings.Join(strings.Split(s, ""), " ") }
	texts := []string{
		"9 " + spaced(strings.Join(codes, "")) + " 9",
		strings.Join(codes, ", "),
		"codes: " + strings.Join(codes, "-") + " thanks",
	}
	for _, text := range append(texts, strings.Repeat("1 ", 30000), strings.Repeat("ab1-", 20000)) {
		var s Scanner
		s.Read(text)
		n := 0
		s.CaptureCandidates(func([]byte) bool { n++; return false })
		if n > 2*maxCaptureTokens {
			t.Fatalf("%d capture candidates for %.20q…", n, text)
		}
	}
}

// TestScanIsBounded: a text is read up to MaxScanBytes; a code past that is
// not seen, one at the limit is.
func TestScanIsBounded(t *testing.T) {
	for _, tc := range []struct {
		pad   int
		found bool
	}{
		{MaxScanBytes - 7, true},  // " 482913" ends exactly at the limit
		{MaxScanBytes - 6, false}, // one byte past it
	} {
		text := strings.Repeat("x", tc.pad) + " 482913"
		var s Scanner
		s.Read(text)
		if got := s.Contains("482913"); got != tc.found {
			t.Errorf("code ending at byte %d: found %v, want %v", len(text), got, tc.found)
		}
		if len(s.buf) > MaxScanBytes {
			t.Fatalf("scan kept %d bytes", len(s.buf))
		}
	}
	// A cut never splits a character.
	var s Scanner
	s.Read(strings.Repeat("é", MaxScanBytes))
	if len(s.buf) > MaxScanBytes || s.other {
		t.Fatalf("multi-byte cut: %d bytes, other=%v", len(s.buf), s.other)
	}
}
