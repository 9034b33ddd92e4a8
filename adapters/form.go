package adapters

import (
	"net/url"
	"strings"
)

// Param is one parameter of a form, its name and value unescaped.
type Param struct{ Name, Value string }

// Params are a form's parameters: the values of one name in the order
// sent, the names in no particular order. They say what url.ParseQuery's
// url.Values say, without a map and a slice per name: Get is Values.Get,
// Has is Values.Has.
type Params []Param

// Get returns the first value of name, "" when there is none.
func (ps Params) Get(name string) string {
	for _, p := range ps {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// Has reports whether name is among the parameters.
func (ps Params) Has(name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

// Unrepeated is the check of FirstValues on ps: it refuses a name of names
// sent more than once.
func (ps Params) Unrepeated(names ...string) error {
	for _, n := range names {
		seen := false
		for _, p := range ps {
			if p.Name == n {
				if seen {
					return Malformed("repeated parameter " + n)
				}
				seen = true
			}
		}
	}
	return nil
}

// Params returns Body parsed as application/x-www-form-urlencoded: the
// parameters and the error url.ParseQuery returns for it. A request is
// parsed once for Verify and Parse (again only when Body has changed
// since), so the parameters are shared: callers must not modify them.
func (r *Request) Params() (Params, error) {
	if !r.formDone || string(r.Body) != r.formBody {
		r.formBody = string(r.Body)
		r.form, r.formErr = ParseParams(r.formBody)
		r.formDone = true
	}
	return r.form, r.formErr
}

// maxFastParams bounds the parameters ParseParams parses itself: far
// below net/url's own limit (10,000 unless GODEBUG urlmaxqueryparams says
// otherwise), which url.ParseQuery then applies to longer forms.
const maxFastParams = 1000

// customParamLimit is set when net/url refuses a form of maxFastParams
// parameters: its limit was lowered (GODEBUG urlmaxqueryparams, from the
// environment, a //go:debug line or go.mod), and every form is then left
// to url.ParseQuery. Asked of net/url itself once, at start-up.
var customParamLimit = paramLimitLowered()

func paramLimitLowered() bool {
	_, err := url.ParseQuery(strings.Repeat("a&", maxFastParams-1) + "a")
	return err != nil
}

// ParseParams parses q as url.ParseQuery does, to the same names, values
// and error, in two allocations (the parameters, and the unescaped names
// and values as one string; a form longer than 1 KiB a third, its buffer)
// where url.ParseQuery makes a map, a slice per name and a string per
// escaped name or value. Only a well-formed form of
// at most maxFastParams parameters is parsed here; anything else (a
// semicolon, a bad escape, more parameters) is url.ParseQuery's, whose
// error messages are then the ones returned.
func ParseParams(q string) (Params, error) {
	n := strings.Count(q, "&") + 1
	if n > maxFastParams || customParamLimit || strings.IndexByte(q, ';') >= 0 || !wellEscaped(q) {
		v, err := url.ParseQuery(q)
		return fromValues(v), err
	}
	// Unescaping never lengthens: one buffer of len(q) holds every name
	// and value, then one string, which each is a part of. A short form's
	// buffer is on the stack.
	var small [1024]byte
	buf := small[:0]
	if len(q) > len(small) {
		buf = make([]byte, 0, len(q))
	}
	for rest := q; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		buf = appendUnescaped(appendUnescaped(buf, name), value)
	}
	s := string(buf)
	ps := make(Params, 0, n)
	for rest := q; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		nl, vl := unescapedLen(name), unescapedLen(value)
		ps = append(ps, Param{Name: s[:nl], Value: s[nl : nl+vl]})
		s = s[nl+vl:]
	}
	return ps, nil
}

// fromValues lists v as Params, the names sorted.
func fromValues(v url.Values) Params {
	ps := make(Params, 0, len(v))
	for _, k := range SortedKeys(v) {
		for _, val := range v[k] {
			ps = append(ps, Param{Name: k, Value: val})
		}
	}
	return ps
}

// wellEscaped reports whether every % in q starts a %XY escape, X and Y
// hex digits: what url.QueryUnescape requires.
func wellEscaped(q string) bool {
	for i := strings.IndexByte(q, '%'); i >= 0; {
		if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
			return false
		}
		j := strings.IndexByte(q[i+3:], '%')
		if j < 0 {
			break
		}
		i += 3 + j
	}
	return true
}

// appendUnescaped appends s unescaped as url.QueryUnescape does ('+' is a
// space, %XY the byte XY) to b; s is well escaped.
func appendUnescaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			b = append(b, unHex(s[i+1])<<4|unHex(s[i+2]))
			i += 2
		case '+':
			b = append(b, ' ')
		default:
			b = append(b, s[i])
		}
	}
	return b
}

// unescapedLen is the length of s unescaped: each %XY is one byte.
func unescapedLen(s string) int { return len(s) - 2*strings.Count(s, "%") }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unHex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
