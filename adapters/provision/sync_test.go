package provision_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters/provision"
	pt "github.com/mogate/mogate/adapters/provision/provisiontest"
)

const (
	want  = "https://sms.example.com/webhooks/acct"
	other = "https://old.example.com/sms"
	a     = "+14155550101" // points elsewhere
	b     = "+14155550102" // in sync
	c     = "+14155550199" // not in the account
	d     = "+14155550103" // Plivo: no application; Telnyx: no messaging profile; Twilio: an SMS application
)

// outside are numbers of the account that are not in the pool: with them
// every listing spans three pages.
var outside = []pt.Num{{Number: "+14155550201", URL: other, Method: "POST", App: "100"}, {Number: "+14155550202"}}

// scenario is one provider's account in the fakes and what sync must do.
type scenario struct {
	name    string
	fake    func() *pt.Fake
	client  func(apiURL string, good bool) (provision.Client, error)
	pool    []string
	list    map[string]string // Inspect's action per number
	sync    map[string]string // the first Sync's action per number
	writes  []string          // exactly the first Sync's write calls
	secrets []string
}

var hc = &http.Client{Timeout: 10 * time.Second}

var scenarios = []scenario{
	{
		name: "twilio",
		fake: func() *pt.Fake {
			return pt.Twilio("AC0123456789abcdef", "tok0123456789secret", append([]pt.Num{
				{Number: a, URL: other, Method: "POST"}, {Number: b, URL: want, Method: "POST"}, {Number: d, URL: want, Method: "POST", App: "AP42"},
			}, outside...)...)
		},
		client: func(u string, good bool) (provision.Client, error) {
			return provision.NewTwilio("AC0123456789abcdef", token(good, "tok0123456789secret"), u, hc)
		},
		pool: []string{a, b, c, d},
		list: map[string]string{a: "points elsewhere", b: "in sync", c: "not found", d: "points elsewhere"},
		sync: map[string]string{a: "updated", b: "unchanged", c: "not found", d: "updated"},
		writes: []string{
			"POST /2010-04-01/Accounts/AC0123456789abcdef/IncomingPhoneNumbers/PN00000000000000000000000000000000.json SmsMethod=POST SmsUrl=" + want,
			"POST /2010-04-01/Accounts/AC0123456789abcdef/IncomingPhoneNumbers/PN00000000000000000000000000000002.json SmsApplicationSid= SmsMethod=POST SmsUrl=" + want,
		},
		secrets: []string{"tok0123456789secret"},
	},
	{
		name: "vonage",
		fake: func() *pt.Fake {
			return pt.Vonage("key123", "vsecret-0123", append([]pt.Num{{Number: a, URL: other}, {Number: b, URL: want}}, outside...)...)
		},
		client: func(u string, good bool) (provision.Client, error) {
			return provision.NewVonage("key123", token(good, "vsecret-0123"), u, hc)
		},
		pool:    []string{a, b, c},
		list:    map[string]string{a: "points elsewhere", b: "in sync", c: "not found"},
		sync:    map[string]string{a: "updated", b: "unchanged", c: "not found"},
		writes:  []string{"POST /number/update country=US moHttpUrl=" + want + " msisdn=14155550101"},
		secrets: []string{"vsecret-0123"},
	},
	{
		name: "plivo",
		fake: func() *pt.Fake {
			return pt.Plivo("MA0123", "ptoken-0123", append([]pt.Num{{Number: a, App: "100"}, {Number: b, App: "200"}, {Number: d}}, outside...),
				pt.App{ID: "100", Name: "shop", URL: other, Method: "GET"}, pt.App{ID: "200", Name: "otp", URL: want, Method: "POST"})
		},
		client: func(u string, good bool) (provision.Client, error) {
			return provision.NewPlivo("MA0123", token(good, "ptoken-0123"), u, hc)
		},
		pool: []string{a, b, c, d},
		list: map[string]string{a: "points elsewhere", b: "in sync", c: "not found", d: "points elsewhere"},
		sync: map[string]string{a: "updated", b: "unchanged", c: "not found", d: "created application"},
		writes: []string{
			"POST /v1/Account/MA0123/Application/100/ message_method=POST message_url=" + want,
			"POST /v1/Account/MA0123/Application/ app_name=mogate message_method=POST message_url=" + want,
			"POST /v1/Account/MA0123/Number/14155550103/ app_id=901",
		},
		secrets: []string{"ptoken-0123"},
	},
	{
		name: "telnyx",
		fake: func() *pt.Fake {
			return pt.Telnyx("KEYtelnyx0123", append([]pt.Num{{Number: a, App: "100"}, {Number: b, App: "200"}, {Number: d}}, outside...),
				pt.App{ID: "100", Name: "shop", URL: other}, pt.App{ID: "200", Name: "otp", URL: want})
		},
		client: func(u string, good bool) (provision.Client, error) {
			return provision.NewTelnyx(token(good, "KEYtelnyx0123"), u, hc)
		},
		pool:    []string{a, b, c, d},
		list:    map[string]string{a: "points elsewhere", b: "in sync", c: "not found", d: "points elsewhere"},
		sync:    map[string]string{a: "updated", b: "unchanged", c: "not found", d: "failed: the number has no messaging profile"},
		writes:  []string{"PATCH /v2/messaging_profiles/100 webhook_url=" + want},
		secrets: []string{"KEYtelnyx0123"},
	},
}

func token(good bool, s string) string {
	if good {
		return s
	}
	return "wrong" + s
}

func entry(t *testing.T, sc scenario, f *pt.Fake, good bool) []provision.Entry {
	t.Helper()
	cl, err := sc.client(f.URL, good)
	if err != nil {
		t.Fatal(err)
	}
	return []provision.Entry{{Name: "acct", Type: sc.name, Client: cl, Numbers: sc.pool, URL: want, Secrets: sc.secrets}}
}

func actions(t *testing.T, rows []provision.Row, want map[string]string) {
	t.Helper()
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for _, r := range rows {
		if !strings.HasPrefix(r.Action, want[r.Number]) {
			t.Errorf("%s: action %q, want %q (row %+v)", r.Number, r.Action, want[r.Number], r)
		}
	}
}

// TestSync runs each provider's account through list, dry run, sync and a
// second sync: paging over three pages, a number pointing elsewhere, one in
// sync, one missing, the provider's special case (Plivo: no application,
// created; Telnyx: no messaging profile, refused; Twilio: an SMS
// application, detached), shared settings said in the row, and exactly the
// expected write calls — none on the list, the dry run and the second run.
func TestSync(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			f := sc.fake()
			defer f.Close()
			ctx := context.Background()

			rows := provision.Inspect(ctx, entry(t, sc, f, true))
			actions(t, rows, sc.list)
			if pages := (f.Len() + pt.PageSize - 1) / pt.PageSize; f.Pages() != pages || pages < 2 {
				t.Errorf("listing read %d pages of %d", f.Pages(), pages)
			}
			if testing.Verbose() {
				for _, r := range rows {
					t.Logf("%+v", r)
				}
			}
			dry := provision.Sync(ctx, entry(t, sc, f, true), true)
			for _, r := range dry {
				if sc.list[r.Number] == "points elsewhere" && !strings.HasPrefix(sc.sync[r.Number], "failed") && (r.Action != "would update" || r.OK || !strings.HasPrefix(r.After, want)) {
					t.Errorf("dry run %s: %+v", r.Number, r)
				}
			}
			if w := f.Writes(); len(w) != 0 {
				t.Fatalf("list and dry run wrote: %v", w)
			}

			rows = provision.Sync(ctx, entry(t, sc, f, true), false)
			actions(t, rows, sc.sync)
			if testing.Verbose() {
				for _, r := range rows {
					t.Logf("%+v", r)
				}
			}
			if got := f.Writes(); !slices.Equal(got, sc.writes) {
				t.Errorf("writes:\n got %q\nwant %q", got, sc.writes)
			}
			for _, r := range rows {
				if strings.HasPrefix(r.Action, "updated") && r.Before == r.After {
					t.Errorf("%s: before = after = %q", r.Number, r.Before)
				}
				if r.Number == a && sc.name != "twilio" && sc.name != "vonage" && !strings.Contains(r.Note, "shared: ") {
					t.Errorf("%s: the shared setting is not said: %+v", r.Number, r)
				}
			}

			n := len(f.Writes())
			again := provision.Sync(ctx, entry(t, sc, f, true), false)
			for _, r := range again {
				if sc.sync[r.Number] == "updated" || sc.sync[r.Number] == "created application" {
					if r.Action != "unchanged" || !r.OK {
						t.Errorf("second run %s: %+v", r.Number, r)
					}
				}
			}
			if w := f.Writes(); len(w) != n {
				t.Errorf("the second run wrote: %v", w[n:])
			}
			if sc.name == "plivo" && f.AppsNamed(provision.AppName) != 1 {
				t.Errorf("%d applications named mogate", f.AppsNamed(provision.AppName))
			}
		})
	}
}

// TestFailures: wrong credentials (401) and a provider answering 500 fail
// every row of the entry, write nothing, and no error text carries a
// credential.
func TestFailures(t *testing.T) {
	for _, sc := range scenarios {
		for _, mode := range []string{"401", "500"} {
			t.Run(sc.name+"/"+mode, func(t *testing.T) {
				f := sc.fake()
				defer f.Close()
				good := mode != "401"
				if mode == "500" {
					f.Fail = 500
				}
				e := entry(t, sc, f, good)
				e[0].Secrets = append(e[0].Secrets, "wrong"+sc.secrets[0])
				for _, rows := range [][]provision.Row{provision.Inspect(context.Background(), e), provision.Sync(context.Background(), e, false)} {
					for _, r := range rows {
						if !strings.HasPrefix(r.Action, "failed: ") || r.OK {
							t.Errorf("%s: %+v", r.Number, r)
						}
						if !strings.Contains(r.Action, mode) && !strings.Contains(r.Action, "Authenticat") {
							t.Errorf("%s: the reason does not say what happened: %q", r.Number, r.Action)
						}
						for _, s := range e[0].Secrets {
							if strings.Contains(r.Action+r.Note+r.Before+r.After, s) {
								t.Errorf("%s: row carries a credential: %+v", r.Number, r)
							}
						}
					}
				}
				if w := f.Writes(); len(w) != 0 {
					t.Errorf("wrote: %v", w)
				}
			})
		}
	}
}

// TestScrub: credentials never survive in an error text, raw or escaped,
// nor as query parameters of a quoted URL.
func TestScrub(t *testing.T) {
	err := &strings.Builder{}
	err.WriteString(`Get "https://rest.nexmo.com/account/numbers?api_key=k1&api_secret=s%2Fx+y": dial tcp: refused; token s/x y`)
	got := provision.Scrub(errString(err.String()), "s/x y")
	if strings.Contains(got, "s/x") || strings.Contains(got, "s%2Fx") || !strings.Contains(got, "api_secret=[redacted]") {
		t.Errorf("Scrub = %q", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestTransportErrors: a provider that cannot be reached fails the rows,
// for every client and on both calls: vonage-go-sdk's panic on a transport
// error is recovered, and the errors that quote request URLs (vonage-go-sdk
// puts api_secret in the query) carry no credential.
func TestTransportErrors(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			f := sc.fake()
			good, err := sc.client(f.URL, true)
			if err != nil {
				t.Fatal(err)
			}
			e := []provision.Entry{{Name: "acct", Type: sc.name, Client: good, Numbers: sc.pool, URL: want, Secrets: sc.secrets}}
			all, err := good.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			f.Close() // from here on every call fails in the transport
			rows := provision.Sync(context.Background(), e, false)
			for _, r := range rows {
				if !strings.HasPrefix(r.Action, "failed: ") {
					t.Errorf("sync %s: %+v", r.Number, r)
				}
			}
			var target provision.Number
			for _, n := range all {
				if n.Number == a {
					target = n
				}
			}
			_, _, err = good.Point(context.Background(), target, want)
			if err == nil {
				t.Fatal("Point on a closed server succeeded")
			}
			msg := err.Error() // the client's own error, before any scrubbing
			for _, s := range sc.secrets {
				if strings.Contains(msg, s) {
					t.Errorf("Point error leaks a credential: %s", msg)
				}
			}
			// In words, naming the URL dialled (api_url), not the
			// provider's public host nor an SDK's panic.
			for _, got := range []string{msg, rows[0].Action} {
				if !strings.Contains(got, "cannot reach "+f.URL+": connection refused") || strings.Contains(got, "panic") ||
					strings.Contains(got, "api.") || strings.Contains(got, "interface conversion") {
					t.Errorf("not in words, or not naming %s: %q", f.URL, got)
				}
			}
			if testing.Verbose() {
				t.Logf("Point: %s", msg)
				t.Logf("row: %s", rows[0].Action)
			}
		})
	}
}

// TestErrorBodiesNotPrinted: an API (or a proxy) whose error bodies echo the
// request, Authorization header, query and form included, has none of it
// printed: the rows say the status, the host dialled and at most a numeric
// error code. The rows are checked for each credential raw, URL-encoded and
// in its HTTP Basic form.
func TestErrorBodiesNotPrinted(t *testing.T) {
	users := map[string]string{"twilio": "AC0123456789abcdef", "vonage": "key123", "plivo": "MA0123", "telnyx": ""}
	codes := map[string]string{"twilio": " (error code 20003", "telnyx": " (error code 10009", "vonage": "", "plivo": ""}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			f := sc.fake()
			defer f.Close()
			f.Echo = 401
			e := entry(t, sc, f, true)
			var forbidden []string
			for _, s := range sc.secrets {
				forbidden = append(forbidden, s, url.QueryEscape(s), base64.StdEncoding.EncodeToString([]byte(users[sc.name]+":"+s)), "Authorization", "Basic ", "Bearer ")
			}
			for _, rows := range [][]provision.Row{provision.Inspect(context.Background(), e), provision.Sync(context.Background(), e, false)} {
				for _, r := range rows {
					line := r.Action + r.Note + r.Before + r.After
					want := "failed: HTTP 401 Unauthorized from " + f.URL + codes[sc.name]
					if !strings.HasPrefix(r.Action, want) {
						t.Errorf("%s: %q, want it to begin %q", r.Number, r.Action, want)
					}
					for _, s := range forbidden {
						if strings.Contains(line, s) {
							t.Errorf("%s: the row carries %q: %q", r.Number, s, line)
						}
					}
				}
			}
			// Without the entry's secrets to scrub with, the client's own
			// errors carry nothing of the echoed request either.
			cl, err := sc.client(f.URL, true)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.List(context.Background())
			if err == nil {
				t.Fatal("List succeeded on a 401")
			}
			for _, s := range append(forbidden, "GET ", "body:") {
				if strings.Contains(err.Error(), s) {
					t.Errorf("List's error carries %q: %q", s, err)
				}
			}
		})
	}
}
