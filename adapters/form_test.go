package adapters

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// paramSeeds are forms ParseParams parses itself and forms it leaves to
// url.ParseQuery.
var paramSeeds = []string{
	"",
	"MessageSid=SM1&From=%2B14155550123&To=%2B14155550100&Body=Your+code+is+482913",
	"a=1&a=2&b=&c&=v&&d=%41%62%2b%25",
	"Body=caf%C3%A9+%E2%9C%93&x=%ff%FE",
	"a%3Db=c%26d",                     // an escaped = and & stay in the name and value
	"a=1;b=2",                         // semicolon: url.ParseQuery's error
	"a=%zz&b=2", "a=%4", "a=%", "%=1", // bad escapes
	strings.Repeat("k=v&", 1200),                     // more than maxFastParams
	"Body=" + strings.Repeat("%2B", 500) + "&x=1",    // longer than the stack buffer
	"a=" + strings.Repeat("x", 2000) + "&b=" + "y+z", // longer, no escapes
}

// TestParseParamsIsParseQuery: ParseParams reads what url.ParseQuery reads,
// names, values in order, and error.
func TestParseParamsIsParseQuery(t *testing.T) {
	for _, q := range paramSeeds {
		checkParams(t, q)
	}
}

func FuzzParseParams(f *testing.F) {
	for _, q := range paramSeeds {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) { checkParams(t, q) })
}

func checkParams(t *testing.T, q string) {
	t.Helper()
	want, werr := url.ParseQuery(q)
	ps, err := ParseParams(q)
	if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
		t.Fatalf("%.80q: error %v, url.ParseQuery's %v", q, err, werr)
	}
	got := url.Values{}
	for _, p := range ps {
		got[p.Name] = append(got[p.Name], p.Value)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%.80q: %v, url.ParseQuery %v", q, got, want)
	}
	for k, vs := range want {
		if ps.Get(k) != vs[0] || !ps.Has(k) {
			t.Fatalf("%.80q: Get(%q) = %q, want %q", q, k, ps.Get(k), vs[0])
		}
		if err := ps.Unrepeated(k); (err != nil) != (len(vs) > 1) {
			t.Fatalf("%.80q: Unrepeated(%q) = %v with %d values", q, k, err, len(vs))
		}
	}
	if ps.Has("\x00none") || ps.Get("\x00none") != "" {
		t.Fatalf("%.80q: a name not sent is there", q)
	}
}

// TestParamsCachedPerBody: a request's form is parsed once, and again
// when its body changes (a test that tampers with a signed body).
func TestParamsCachedPerBody(t *testing.T) {
	r := &Request{Body: []byte("a=1")}
	if ps, _ := r.Params(); ps.Get("a") != "1" {
		t.Fatal(ps)
	}
	r.Body[2] = '2'
	if ps, _ := r.Params(); ps.Get("a") != "2" {
		t.Fatalf("after the body changed in place: %v", ps)
	}
	r.Body = []byte("a=3&b=4")
	if ps, _ := r.Params(); ps.Get("a") != "3" || ps.Get("b") != "4" {
		t.Fatalf("after a new body: %v", ps)
	}
	if n := testing.AllocsPerRun(10, func() { _, _ = r.Params() }); n != 0 {
		t.Errorf("Params of an unchanged body: %v allocations, want 0", n)
	}
}

// TestParseParamsAllocs: a short form costs two allocations (the
// parameters, and their unescaped names and values as one string),
// whatever its escapes; url.ParseQuery makes a map, a slice per name and a string per
// escaped name or value.
func TestParseParamsAllocs(t *testing.T) {
	q := paramSeeds[1]
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseParams(q) }); n > 2 {
		t.Errorf("ParseParams: %v allocations, want at most 2", n)
	}
}

// TestParamLimitLoweredAsked: a lowered net/url parameter limit, however
// set, leaves every form to url.ParseQuery: the probe asks net/url itself.
func TestParamLimitLoweredAsked(t *testing.T) {
	if paramLimitLowered() {
		t.Fatal("net/url's default limit seen as lowered")
	}
	t.Setenv("GODEBUG", "urlmaxqueryparams=100")
	if !paramLimitLowered() {
		t.Fatal("a limit of 100 parameters not seen")
	}
}
