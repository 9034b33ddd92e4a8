// Package text holds the matching rules of message text (docs/matching.md):
// how a code is normalized, and which codes a message's text holds, for an
// expected-sender session and for a capture session. Every store matches by
// these rules: the memory store with a Scanner, a store that matches
// elsewhere (package redisstore hands a Scan to a Redis function) with
// ScanText.
package text

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxCodeLen is the longest code, in normalized characters.
const MaxCodeLen = 16

// MinCaptureCodeLen is the shortest code of a capture session: the code
// alone identifies the session, so mogate generates it, at least this long.
const MinCaptureCodeLen = 6

// MaxScanBytes bounds how much of a message's text is read: a code must
// appear in its first MaxScanBytes bytes (an SMS is at most a few
// thousand), so a huge text costs no more than this.
const MaxScanBytes = 4096

// maxCaptureTokens is the most candidate tokens a text may hold and still
// be tried against capture sessions (docs/matching.md).
const maxCaptureTokens = 3

// A message's text is read as groups of chunks. After NFKC, every Unicode
// decimal digit becomes its ASCII digit and letters are lower-cased; letters
// and digits form chunks; separators (white space, '-', '.') end a chunk but
// not the group; anything else ends the group. A code matches when it equals
// the concatenation of one or more consecutive chunks of one group, so it
// must appear as a whole token, with separators inside it ignored:
// "482 913" holds 482913, "4829135" does not.

// Capture sessions are matched more narrowly, since the code alone picks
// the session: the text is read as candidate tokens — maximal runs of
// chunks joined by single spaces, '-' or '.' (a newline, two separators in
// a row or any other character end a token). A text with more than
// maxCaptureTokens tokens matches no capture session; otherwise each token
// offers itself, whole, and the one run of all-digit chunks inside it when
// it has exactly one ("Code 482913" offers "code482913" and "482913"). So
// one SMS is a handful of guesses, never hundreds.

// Scanner holds a normalized text: the code characters of all chunks in
// buf, chunk i spanning buf[starts[i]:ends[i]]; group[i] is true when chunk i
// starts a new group, token[i] when it starts a new candidate token.
type Scanner struct {
	buf    []byte
	starts []int
	ends   []int
	group  []bool
	token  []bool
	arr    [256]byte
	sarr   [48]int
	earr   [48]int
	garr   [48]bool
	tarr   [48]bool
	other  bool // a character that is neither code nor separator was seen
}

func (t *Scanner) reset() {
	t.buf, t.starts, t.ends, t.group, t.token, t.other = t.arr[:0], t.sarr[:0], t.earr[:0], t.garr[:0], t.tarr[:0], false
}

// Read fills t from text (its first MaxScanBytes bytes). It allocates only
// for texts longer than its inline buffers or not already in NFKC.
func (t *Scanner) Read(text string) {
	t.reset()
	text = head(text)
	if ASCII(text) { // ASCII is always NFKC
		t.scanASCII(text)
		return
	}
	if !norm.NFKC.IsNormalString(text) {
		text = norm.NFKC.String(text)
	}
	t.scanRunes(text)
}

// head returns the part of text that is read: its first MaxScanBytes
// bytes, less the start of a character they would cut in half.
func head(text string) string {
	if len(text) <= MaxScanBytes {
		return text
	}
	cut := MaxScanBytes
	for cut > MaxScanBytes-utf8.UTFMax && !utf8.RuneStart(text[cut]) {
		cut-- // do not cut a character in half
	}
	return text[:cut]
}

// scanRunes is scan for NFKC text, rune by rune.
func (t *Scanner) scanRunes(text string) {
	inChunk, newGroup, seps, joiner := false, true, 0, false
	for _, r := range text {
		c, kind := classify(r)
		switch kind {
		case codeChar:
			if !inChunk {
				t.startChunk(newGroup, newGroup || seps != 1 || !joiner)
				inChunk, newGroup, seps = true, false, 0
			}
			t.buf = utf8.AppendRune(t.buf, c)
			t.ends[len(t.ends)-1] = len(t.buf)
		case separator:
			inChunk = false
			seps++
			joiner = isJoiner(r)
		default:
			inChunk, newGroup, t.other = false, true, true
		}
	}
}

// startChunk opens a chunk at the end of buf.
func (t *Scanner) startChunk(newGroup, newToken bool) {
	t.starts = append(t.starts, len(t.buf))
	t.group = append(t.group, newGroup)
	t.token = append(t.token, newToken)
	t.ends = append(t.ends, 0)
}

// isJoiner reports whether separator r joins two chunks into one candidate
// token: a space, '-' or '.', or a dash.
func isJoiner(r rune) bool {
	switch r {
	case ' ', '-', '.', '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2212':
		return true
	}
	return false
}

// asciiKinds classifies each byte of an ASCII text for scanASCII: a code
// character (a letter or digit; asciiCode holds its code character, and 0
// for every other byte), a separator that joins candidate tokens (' ', '-',
// '.'), another separator ('\t', '\n', '\r'), or another character.
var asciiKinds, asciiCode = func() (kinds, code [256]byte) {
	for c := range 256 {
		switch {
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'z':
			kinds[c], code[c] = asciiCodeChar, byte(c)
		case c >= 'A' && c <= 'Z':
			kinds[c], code[c] = asciiCodeChar, byte(c)+'a'-'A'
		case c == ' ' || c == '-' || c == '.':
			kinds[c] = asciiJoiner
		case c == '\t' || c == '\n' || c == '\r':
			kinds[c] = asciiSeparator
		}
	}
	return kinds, code
}()

const (
	asciiOther = iota
	asciiCodeChar
	asciiJoiner
	asciiSeparator
)

// scanASCII is scan for ASCII text, byte by byte, a chunk's characters in
// one inner loop.
func (t *Scanner) scanASCII(text string) {
	newGroup, seps, joiner := true, 0, false
	buf := t.buf
	for i := 0; i < len(text); {
		switch asciiKinds[text[i]] {
		case asciiCodeChar:
			t.starts = append(t.starts, len(buf))
			t.group = append(t.group, newGroup)
			t.token = append(t.token, newGroup || seps != 1 || !joiner)
			newGroup, seps = false, 0
			for ; i < len(text); i++ {
				c := asciiCode[text[i]] // 0: not a code character
				if c == 0 {
					break
				}
				buf = append(buf, c)
			}
			t.ends = append(t.ends, len(buf))
			continue
		case asciiJoiner:
			seps++
			joiner = true
		case asciiSeparator:
			seps++
			joiner = false
		default:
			newGroup, t.other = true, true
		}
		i++
	}
	t.buf = buf
}

type charKind uint8

const (
	other charKind = iota
	codeChar
	separator
)

func classify(r rune) (rune, charKind) {
	switch {
	case r >= '0' && r <= '9':
		return r, codeChar
	case r >= 'a' && r <= 'z':
		return r, codeChar
	case r >= 'A' && r <= 'Z':
		return r + ('a' - 'A'), codeChar
	case r == ' ' || r == '-' || r == '.' || r == '\t' || r == '\n' || r == '\r':
		return r, separator
	case r < utf8.RuneSelf:
		return r, other
	case unicode.IsDigit(r):
		return '0' + digitValue(r), codeChar
	case unicode.IsLetter(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r):
		return unicode.ToLower(r), codeChar
	case unicode.IsSpace(r) || r == '\u2010' || r == '\u2011' || r == '\u2012' || r == '\u2013' || r == '\u2014' || r == '\u2212':
		return r, separator
	}
	return r, other
}

// digitValue returns the value of a Unicode decimal digit. Decimal digits
// come in contiguous runs of ten, from zero to nine (a Unicode stability
// guarantee), so the value is the distance from the start of its run mod 10.
func digitValue(r rune) rune {
	start := r
	for start > 0 && unicode.IsDigit(start-1) {
		start--
	}
	return (r - start) % 10
}

// ContainsInASCII is Read then Contains, without a Scanner, for a text
// that ASCII has accepted: whether code is a whole token of text, read in
// place, once. code must be normalized (NormalizeCode's output, as a
// session's code is stored): a code of digits is compared byte for byte,
// so "482 913" could be found where Contains finds nothing. On a text
// ASCII has not accepted its answer is wrong (it skips the normalization
// Read applies): the caller must have asked ASCII first.
func ContainsInASCII(text, code string) bool {
	text = head(text) // in this body, not a call to a function of the cut text: one call fewer a match
	if code == "" {
		return false // no chunk is empty
	}
	if c := code[0]; c >= '0' && c <= '9' {
		// A digit is read as itself alone: the chunks that start with
		// it start at one of its bytes (strings.IndexByte finds them a
		// word at a time) that follows no code character. A code is
		// mostly written as it is normalized, in one chunk: that is one
		// comparison, and a token where no code character follows.
		for i := 0; i < len(text); i++ {
			j := strings.IndexByte(text[i:], c)
			if j < 0 {
				return false
			}
			i += j
			if i > 0 && asciiCode[text[i-1]] != 0 {
				continue
			}
			if rest := text[i:]; strings.HasPrefix(rest, code) {
				if len(rest) == len(code) || asciiCode[rest[len(code)]] == 0 {
					return true
				}
			} else if tokenAt(rest, code) {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(text); {
		if asciiCode[text[i]] == 0 {
			i++
			continue
		}
		// A chunk starts at i: try the candidates that start with it.
		if asciiCode[text[i]] == code[0] && tokenAt(text[i:], code) {
			return true
		}
		i++
		for i < len(text) && asciiCode[text[i]] != 0 {
			i++
		}
	}
	return false
}

// ASCII reports whether ContainsInASCII reads text: whether the part of it
// that Read reads is ASCII. It reads 8 bytes a step (one load), the last
// step the text's last 8 bytes, overlapping the one before rather than a
// loop over the bytes left; head is taken here, in the same body (one
// call a matching ingest), and Read, whose text is cut already, asks it
// too (head of a cut text is the text).
func ASCII(text string) bool {
	text = head(text)
	const high = 0x8080808080808080
	if len(text) < 8 {
		for i := 0; i < len(text); i++ {
			if text[i] >= utf8.RuneSelf {
				return false
			}
		}
		return true
	}
	last := word(text[len(text)-8:])
	for ; len(text) > 8; text = text[8:] {
		if word(text)&high != 0 {
			return false
		}
	}
	return last&high == 0
}

// word is the first 8 bytes of s, little-endian: one load.
func word(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// tokenAt reports whether code is the concatenation of the chunks of one
// group that text starts with (text starts with a chunk).
func tokenAt(text, code string) bool {
	k := 0
	for j := 0; j < len(text); j++ {
		switch c := text[j]; asciiKinds[c] {
		case asciiCodeChar:
			if k == len(code) || asciiCode[c] != code[k] {
				return false // past code within a chunk, or a different character
			}
			k++
		case asciiJoiner, asciiSeparator:
			if k == len(code) {
				return true // code ends where a chunk does
			}
		default:
			return k == len(code) // the group ends
		}
	}
	return k == len(code)
}

// Contains reports whether code (normalized) is a whole token of the text.
// It is candidates(len(code), len(code), ...) comparing each with code,
// written out: no closure, no call a candidate.
func (t *Scanner) Contains(code string) bool {
	for i, start := range t.starts {
		for j := i; j < len(t.starts); j++ {
			if j > i && t.group[j] {
				break
			}
			end := t.ends[j]
			if n := end - start; n >= len(code) {
				if n == len(code) && string(t.buf[start:end]) == code {
					return true
				}
				break
			}
		}
	}
	return false
}

// candidates calls fn with every concatenation of consecutive chunks of one
// group whose length is within [min, max] bytes, until fn returns true.
func (t *Scanner) candidates(min, max int, fn func([]byte) bool) {
	for i := range t.starts {
		for j := i; j < len(t.starts); j++ {
			if j > i && t.group[j] {
				break
			}
			n := t.ends[j] - t.starts[i]
			if n > max {
				break
			}
			if n >= min && fn(t.span(i, j)) {
				return
			}
		}
	}
}

// CaptureCandidates calls fn with what the text offers capture sessions
// (see above), until fn returns true. A text of more than maxCaptureTokens
// candidate tokens offers nothing. The number of calls is at most
// 2*maxCaptureTokens whatever the text.
func (t *Scanner) CaptureCandidates(fn func([]byte) bool) {
	tokens := 0
	for _, nt := range t.token {
		if nt {
			tokens++
		}
	}
	if tokens > maxCaptureTokens {
		return
	}
	fits := func(b []byte) bool { return len(b) >= MinCaptureCodeLen && utf8.RuneCount(b) <= MaxCodeLen }
	for i := 0; i < len(t.starts); {
		j := i + 1
		for j < len(t.starts) && !t.token[j] {
			j++
		}
		// Chunks i..j-1 form one token; find its runs of all-digit chunks.
		runs, rs, re := 0, -1, -1
		for k := i; k < j; k++ {
			if !isDigits(t.span(k, k)) {
				continue
			}
			if k == i || !isDigits(t.span(k-1, k-1)) {
				runs++
				rs = k
			}
			re = k
		}
		whole := t.span(i, j-1)
		if fits(whole) && fn(whole) {
			return
		}
		if runs == 1 && (rs != i || re != j-1) {
			if run := t.span(rs, re); fits(run) && fn(run) {
				return
			}
		}
		i = j
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// span returns the code characters of chunks i..j. Chunks of one group are
// contiguous in buf, separators having been dropped.
func (t *Scanner) span(i, j int) []byte { return t.buf[t.starts[i]:t.ends[j]] }

// NormalizeCode returns the form of a code that messages are compared with,
// and false when the code holds anything but letters, digits and separators,
// or more than MaxCodeLen characters.
func NormalizeCode(code string) (string, bool) {
	if isNormal(code) {
		return code, true // one chunk of code characters: nothing to scan
	}
	return normalizeCode(code)
}

// isNormal reports whether code is already a normalized code: 1 to
// MaxCodeLen ASCII digits and lower-case letters (most codes are digits).
func isNormal(code string) bool {
	if len(code) == 0 || len(code) > MaxCodeLen {
		return false
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// normalizeCode is NormalizeCode by the Scanner.
func normalizeCode(code string) (string, bool) {
	t := scanPool.Get().(*Scanner)
	defer scanPool.Put(t)
	t.Read(code)
	if len(t.starts) == 0 || t.other || utf8.RuneCount(t.buf) > MaxCodeLen {
		return "", false
	}
	for _, g := range t.group[1:] {
		if g {
			return "", false
		}
	}
	if string(t.buf) == code {
		return code, true // share the string: most codes are digits already
	}
	return string(t.buf), true
}

// Scan is a text read by the matching rules, for a store that matches
// elsewhere (package redisstore hands it to a Redis function): the store
// must decide with it exactly as a Scanner does.
type Scan struct {
	// Chunks are the normalized code characters of the text's chunks. A
	// code (normalized) matches an expected-sender session when it equals
	// the concatenation of one or more consecutive chunks of one group.
	Chunks []string
	// Groups has one byte per chunk: '1' when the chunk starts a group,
	// '0' when it continues the previous chunk's.
	Groups string
	// Capture is what the text offers capture sessions, in the order they
	// are tried: at most 2*3 candidates, none when it has too many tokens.
	Capture []string
}

// ScanText reads text (its first MaxScanBytes bytes) by the matching rules.
func ScanText(text string) Scan {
	t := scanPool.Get().(*Scanner)
	defer scanPool.Put(t)
	t.Read(text)
	out := Scan{Chunks: make([]string, len(t.starts))}
	groups := make([]byte, len(t.starts))
	for i := range t.starts {
		out.Chunks[i] = string(t.span(i, i))
		groups[i] = '0'
		if t.group[i] {
			groups[i] = '1'
		}
	}
	out.Groups = string(groups)
	t.CaptureCandidates(func(c []byte) bool {
		out.Capture = append(out.Capture, string(c))
		return false
	})
	return out
}

// Contains reports whether a normalized code matches the scanned text as
// an expected-sender code: the reference for stores that match elsewhere.
func (s Scan) Contains(code string) bool {
	for i := range s.Chunks {
		cat := ""
		for j := i; j < len(s.Chunks) && len(cat) < len(code); j++ {
			if j > i && s.Groups[j] == '1' {
				break
			}
			cat += s.Chunks[j]
		}
		if cat == code {
			return true
		}
	}
	return false
}

// scanPool reuses scanners: a Scanner's slices point into its own arrays,
// which would make every one on a stack escape to the heap.
var scanPool = sync.Pool{New: func() any { return new(Scanner) }}

// GetScanner returns a Scanner from a pool; PutScanner gives it back.
func GetScanner() *Scanner { return scanPool.Get().(*Scanner) }

// PutScanner returns a Scanner got from GetScanner to the pool.
func PutScanner(t *Scanner) { scanPool.Put(t) }
