package text

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Every example of docs/matching.md, and more.
func TestCodeMatching(t *testing.T) {
	code, ok := NormalizeCode("482913")
	if !ok {
		t.Fatal("NormalizeCode")
	}
	cases := []struct {
		text string
		want bool
	}{
		{"482913", true},
		{" 482913\n", true},
		{"Code: 482913", true},
		{"482 913", true},
		{"４８２９１３", true},
		{"٤٨٢٩١٣", true},
		{"My code is 482913 thanks", true},
		{"4829135", false},
		{"482914", false},
		{"۴۸۲۹۱۳", true}, // extended Arabic-Indic digits
		{"४८२९१३", true}, // Devanagari
		{"𝟒𝟖𝟐𝟗𝟏𝟑", true}, // mathematical bold digits (NFKC)
		{"482-913", true},
		{"48.29.13", true},
		{"code 482913.", true},
		{"1482913", false},
		{"482913a", false},
		{"482:913", false},
		{"482913 482914", true},
		{"", false},
		{"48291", false},
		{"4 8 2 9 1 3", true},
	}
	for _, tc := range cases {
		var s Scanner
		s.Read(tc.text)
		if got := s.Contains(code); got != tc.want {
			t.Errorf("%q contains 482913 = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestPhraseCodes(t *testing.T) {
	code, ok := NormalizeCode("Blue Horse")
	if !ok || code != "bluehorse" {
		t.Fatalf("NormalizeCode = %q %v", code, ok)
	}
	for text, want := range map[string]bool{"BLUE HORSE": true, "my blue-horse!": true, "bluehorses": false, "ＢＬＵＥ ｈｏｒｓｅ": true, "blue, horse": false} {
		var s Scanner
		s.Read(text)
		if got := s.Contains(code); got != want {
			t.Errorf("%q = %v, want %v", text, got, want)
		}
	}
}

func TestNormalizeCodeRejects(t *testing.T) {
	for _, c := range []string{"", "   ", "ab:cd", "12345678901234567", "a!"} {
		if n, ok := NormalizeCode(c); ok {
			t.Errorf("NormalizeCode(%q) = %q, ok", c, n)
		}
	}
	if n, ok := NormalizeCode("Ab-12"); !ok || n != "ab12" {
		t.Errorf("NormalizeCode(Ab-12) = %q %v", n, ok)
	}
}

func TestCandidates(t *testing.T) {
	var s Scanner
	s.Read("hi 1234 56, 7890")
	var got []string
	s.candidates(4, 16, func(b []byte) bool { got = append(got, string(b)); return false })
	want := []string{"hi1234", "hi123456", "1234", "123456", "7890"}
	if len(got) != len(want) {
		t.Fatalf("candidates = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("candidates = %q, want %q", got, want)
		}
	}
}

func TestLongTextDoesNotOverflow(t *testing.T) {
	long := ""
	for range 500 {
		long += "word 12 "
	}
	var s Scanner
	s.Read(long + "482913")
	if !s.Contains("482913") {
		t.Fatal("code at the end of a long text not found")
	}
}

func FuzzScan(f *testing.F) {
	f.Add("Code: 482 913", "482913")
	f.Add("٤٨٢٩١٣", "482913")
	f.Add(strings.Repeat("x ", 2045)+"482913\x80", "482913") // cut before the code's last character
	f.Fuzz(func(t *testing.T, text, code string) {
		var s Scanner
		s.Read(text)
		n, ok := NormalizeCode(code)
		if !ok {
			return
		}
		// Contains is candidates of the code's length, one equal to it.
		want := false
		s.candidates(len(n), len(n), func(c []byte) bool { want = string(c) == n; return want })
		if got := s.Contains(n); got != want {
			t.Fatalf("Contains(%q) in %q = %v, candidates say %v", n, text, got, want)
		}
		// ContainsInASCII answers as Read then Contains, for every ASCII text.
		if found, ok := containsChecked(text, n); ok != isASCII(head(text)) || ok && found != want {
			t.Fatalf("containsChecked(%q, %q) = %v, %v; Contains says %v", text, n, found, ok, want)
		}
		// The ASCII fast path and the general path agree.
		if isASCII(text) {
			var slow Scanner
			slow.reset()
			slow.scanRunes(head(text))
			if string(slow.buf) != string(s.buf) || fmt.Sprint(slow.starts, slow.ends, slow.group, slow.token, slow.other) != fmt.Sprint(s.starts, s.ends, s.group, s.token, s.other) {
				t.Fatalf("ASCII path differs for %q", text)
			}
		}
		// Capture matching compares at most two strings per token, of at
		// most three tokens.
		calls := 0
		s.CaptureCandidates(func([]byte) bool { calls++; return false })
		if calls > 2*maxCaptureTokens {
			t.Fatalf("%d capture candidates for %q", calls, text)
		}
		// A code always matches itself written out.
		var self Scanner
		self.Read(code)
		if !self.Contains(n) {
			t.Fatalf("code %q (normalized %q) does not match itself", code, n)
		}
	})
}

// TestScanTextAgrees: the exported scan, which other stores match with,
// decides like the matcher's own.
func TestScanTextAgrees(t *testing.T) {
	texts := []string{"482913", " 482913\n", "Code: 482913", "482 913", "４８２９１３", "٤٨٢٩１٣", "My code is 482913 thanks",
		"4829135", "482914", "ab-12 CD", "a\nb\nc\n482913", "x482913", "48.29-13", "code 48 29 13 and 7", ""}
	codes := []string{"482913", "ab12cd", "4829", "13", "b", "code48", "482913513"}
	for _, text := range texts {
		var ts Scanner
		ts.Read(text)
		sc := ScanText(text)
		for _, code := range codes {
			if got, want := sc.Contains(code), ts.Contains(code); got != want {
				t.Errorf("%q contains %q: Scan %v, matcher %v", text, code, got, want)
			}
		}
		var want []string
		ts.CaptureCandidates(func(c []byte) bool { want = append(want, string(c)); return false })
		if strings.Join(sc.Capture, "|") != strings.Join(want, "|") {
			t.Errorf("%q capture candidates %q, want %q", text, sc.Capture, want)
		}
	}
}

// TestNormalizeCodeFastPath: the shortcut for codes already normalized
// answers as the Scanner does, on every short string over code characters,
// separators and other characters.
func TestNormalizeCodeFastPath(t *testing.T) {
	const chars = "09az AZ-.!é"
	var walk func(prefix string)
	walk = func(prefix string) {
		got, gotOK := NormalizeCode(prefix)
		want, wantOK := normalizeCode(prefix)
		if got != want || gotOK != wantOK {
			t.Fatalf("NormalizeCode(%q) = %q, %v; the Scanner says %q, %v", prefix, got, gotOK, want, wantOK)
		}
		if len(prefix) < 4 {
			for _, c := range chars {
				walk(prefix + string(c))
			}
		}
	}
	walk("")
	for n := MaxCodeLen - 1; n <= MaxCodeLen+1; n++ {
		for _, s := range []string{strings.Repeat("7", n), strings.Repeat("q", n), strings.Repeat("7", n-1) + "Q"} {
			got, gotOK := NormalizeCode(s)
			want, wantOK := normalizeCode(s)
			if got != want || gotOK != wantOK {
				t.Fatalf("NormalizeCode(%q) = %q, %v; the Scanner says %q, %v", s, got, gotOK, want, wantOK)
			}
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// TestContainsASCIIAgrees: ContainsInASCII answers as Read then Contains on
// every text of up to 6 characters over an alphabet of code characters,
// separators and another character, for codes that start, end and span
// its chunks, and says it cannot read a text past ASCII.
func TestContainsASCIIAgrees(t *testing.T) {
	const alphabet = "48A -.:\n"
	codes := []string{"4", "48", "84", "a4", "4a", "448", "48a4", "a", ""}
	var s Scanner
	var texts func(prefix string, n int)
	texts = func(prefix string, n int) {
		for _, code := range codes {
			s.Read(prefix)
			found, ok := containsChecked(prefix, code)
			if want := s.Contains(code); !ok || found != want {
				t.Fatalf("containsChecked(%q, %q) = %v, %v; Contains says %v", prefix, code, found, ok, want)
			}
		}
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			texts(prefix+string(c), n-1)
		}
	}
	texts("", 6)
	for _, text := range []string{"482913 é", "é 482913", "４８２９１３", "Code: 482913\u0301"} {
		if _, ok := containsChecked(text, "482913"); ok {
			t.Fatalf("ASCII accepted %q", text)
		}
	}
	long := strings.Repeat("x ", MaxScanBytes/2) + "482913"
	s.Read(long)
	if found, ok := containsChecked(long, "482913"); !ok || found || s.Contains("482913") {
		t.Fatal("a code past MaxScanBytes was found")
	}
	// Texts cut at MaxScanBytes: Read steps back off a character's
	// continuation bytes, and ASCII and ContainsInASCII must read the same head.
	for _, text := range []string{
		strings.Repeat("x ", 2045) + "482913\x80",     // the byte at the limit continues a character: the 3 is cut
		strings.Repeat("x ", 2045) + "482913\x80\x80", // and two of them
		strings.Repeat("x ", 2045) + "48291é3",        // the code straddles the limit
		strings.Repeat("x ", 2045) + "4829é13",        // é cut whole
		strings.Repeat("x ", 2045) + "482913 é",       // ASCII up to the limit, é past it
		strings.Repeat("x ", 2044) + "y482913é",       // é straddles the limit
		strings.Repeat("x ", 2046) + "482913",         // an ASCII code straddles the limit
	} {
		s.Read(text)
		for _, code := range []string{"482913", "48291", "4829"} {
			want := s.Contains(code)
			if found, ok := containsChecked(text, code); ok && found != want || ok != isASCII(head(text)) {
				t.Fatalf("containsChecked(%q, %q) = %v, %v; Contains says %v", text[MaxScanBytes-8:], code, found, ok, want)
			}
		}
	}
}

// TestReadLateNonASCIIOnce: a text that leaves ASCII late is read once, by
// the rune path: Read allocates no more than that path alone (the ASCII
// path filling the buffers first doubled it).
func TestReadLateNonASCIIOnce(t *testing.T) {
	text := strings.Repeat("ab ", 1300) + "é"
	var s Scanner
	read := testing.AllocsPerRun(20, func() { s.Read(text) })
	runes := testing.AllocsPerRun(20, func() {
		s.reset()
		if t := text; norm.NFKC.IsNormalString(t) {
			s.scanRunes(t)
		} else {
			s.scanRunes(norm.NFKC.String(t))
		}
	})
	if read > runes {
		t.Fatalf("Read allocates %v times, the rune path alone %v", read, runes)
	}
}

// containsChecked is Read then Contains by ContainsInASCII for an ASCII
// text, as the memory store asks it: ok is false when the text (the part
// Read reads) is not ASCII.
func containsChecked(text, code string) (found, ok bool) {
	if !ASCII(text) {
		return false, false
	}
	return ContainsInASCII(text, code), true
}

// TestASCIIEachByte: ASCII finds a byte past ASCII at every place of
// texts of every length to 5 of its 8-byte steps, and none in the others.
func TestASCIIEachByte(t *testing.T) {
	for n := range 41 {
		b := []byte(strings.Repeat("a", n))
		if !ASCII(string(b)) {
			t.Fatalf("%d ASCII bytes not ASCII", n)
		}
		for i := range b {
			b[i] = 0x80
			if ASCII(string(b)) {
				t.Fatalf("byte %d of %d past ASCII not seen", i, n)
			}
			b[i] = 'a'
		}
	}
}
