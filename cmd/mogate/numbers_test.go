package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	pt "github.com/mogate/mogate/adapters/provision/provisiontest"
)

const (
	twToken  = "twtoken0123456789secret"
	voSecret = "vonage-api-secret-0123"
	voKey    = "vonagekey01"
	plToken  = "plivo-auth-token-0123"
	txKey    = "KEYtelnyx-api-key-0123"
	public   = "https://sms.example.com"
)

type fakes struct{ tw, vo, pl, tx *pt.Fake }

func startFakes(t *testing.T) fakes {
	t.Helper()
	f := fakes{
		tw: pt.Twilio("AC0123456789abcdef", twToken,
			pt.Num{Number: "+14155550101", URL: "https://old.example.com/sms", Method: "POST"},
			pt.Num{Number: "+14155550102", URL: public + "/webhooks/tw", Method: "POST"},
			pt.Num{Number: "+14155550190"}),
		vo: pt.Vonage(voKey, voSecret,
			pt.Num{Number: "+447700900101", URL: "https://old.example.com/vonage"},
			pt.Num{Number: "+447700900102", URL: public + "/webhooks/vo"},
			pt.Num{Number: "+447700900190"}),
		pl: pt.Plivo("MA0123", plToken, []pt.Num{{Number: "+14155550301", App: "100"}, {Number: "+14155550302"}, {Number: "+14155550390", App: "100"}},
			pt.App{ID: "100", Name: "shop", URL: "https://old.example.com/plivo", Method: "POST"}),
		tx: pt.Telnyx(txKey, []pt.Num{{Number: "+14155550401", App: "p1"}, {Number: "+14155550402", App: "p1"}, {Number: "+14155550490", App: "p9"}},
			pt.App{ID: "p1", Name: "otp", URL: "https://old.example.com/telnyx"}, pt.App{ID: "p9", Name: "other", URL: "https://other.example.com"}),
	}
	t.Cleanup(func() { f.tw.Close(); f.vo.Close(); f.pl.Close(); f.tx.Close() })
	return f
}

func (f fakes) writes() int {
	return len(f.tw.Writes()) + len(f.vo.Writes()) + len(f.pl.Writes()) + len(f.tx.Writes())
}

// numbersConfig writes a configuration whose entries talk to the fakes;
// wrong gives every entry wrong REST credentials, extra adds pool numbers.
func numbersConfig(t *testing.T, f fakes, wrong bool, extra string) string {
	t.Helper()
	w := func(s string) string {
		if wrong {
			return "wrong" + strings.ReplaceAll(s, "-", "")
		}
		return s
	}
	y := fmt.Sprintf(`public_url: %s
api_keys:
  - {name: shop, key: shop-key-0123456789}
providers:
  - {name: tw, type: twilio, auth_token: %s, account_sid: AC0123456789abcdef, api_url: "%s"}
  - {name: vo, type: vonage, signature_secret: vonage-sig-secret, api_key: %s, api_secret: %s, api_url: "%s"}
  - {name: pl, type: plivo, auth_id: MA0123, auth_token: %s, api_url: "%s"}
  - {name: tx, type: telnyx, public_key: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", api_key: %s, api_url: "%s"}
  - {name: si, type: sinch, webhook_secret: sinch-secret-0123}
numbers:
  - {number: "+14155550101", provider: tw}
  - {number: "+14155550102", provider: tw, weight: 0}
  - {number: "+447700900101", provider: vo, countries: [GB, IE]}
  - {number: "+447700900102", provider: vo}
  - {number: "+14155550301", provider: pl}
  - {number: "+14155550302", provider: pl}
  - {number: "+14155550401", provider: tx}
  - {number: "+14155550402", provider: tx}
  - {number: "+31970102030", provider: si, countries: ["*"]}
`, public, w(twToken), f.tw.URL, voKey, w(voSecret), f.vo.URL, w(plToken), f.pl.URL, w(txKey), f.tx.URL) + extra
	path := filepath.Join(t.TempDir(), "mogate.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var secrets = []string{twToken, voSecret, plToken, txKey, "sinch-secret-0123", "vonage-sig-secret", "shop-key-0123456789"}

// numbers runs `mogate numbers` in-process and checks that no credential,
// right or wrong, reaches stdout or stderr.
func numbers(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"numbers"}, args...), &out, &errb)
	for _, s := range secrets {
		for _, v := range []string{s, "wrong" + strings.ReplaceAll(s, "-", "")} {
			if strings.Contains(out.String()+errb.String(), v) {
				t.Errorf("numbers %v leaks a credential:\n%s\n%s", args, out.String(), errb.String())
			}
		}
	}
	if testing.Verbose() {
		t.Logf("numbers %v: exit %d\n%s%s", args, code, out.String(), errb.String())
	}
	return code, out.String(), errb.String()
}

// line returns the output line of number.
func line(out, number string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, number+" ") {
			return l
		}
	}
	return ""
}

// TestNumbersWalkthrough is the provider set-up of docs/providers.md: list, dry run,
// sync, a second sync, list again; exit codes, rows and write calls.
func TestNumbersWalkthrough(t *testing.T) {
	f := startFakes(t)
	cfg := numbersConfig(t, f, false, "")

	code, out, _ := numbers(t, "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	for number, want := range map[string][]string{
		"+14155550101":  {"tw", "twilio", "https://old.example.com/sms (POST)", "points elsewhere"},
		"+14155550102":  {"tw", " 0 ", "in sync"},
		"+447700900101": {"vo", "vonage", "GB,IE", "points elsewhere", "account's SMS setting"},
		"+14155550302":  {"pl", "(no application)", "points elsewhere"},
		"+14155550301":  {"shared: application 100 (shop) also serves 1 number(s) outside the pool"},
		"+14155550401":  {"tx", "points elsewhere", "messaging profile p1 (otp)"},
		"+31970102030":  {"si", "sinch", "*", "manual: Sinch", "= " + public + "/webhooks/si"},
	} {
		for _, w := range want {
			if !strings.Contains(line(out, number), w) {
				t.Errorf("list row %s lacks %q:\n%s", number, w, out)
			}
		}
	}
	if !strings.Contains(out, public+"/webhooks/{entry}") {
		t.Errorf("list does not say where SMS must go:\n%s", out)
	}

	code, out, _ = numbers(t, "sync", "--config", cfg, "--dry-run")
	if code != 1 || f.writes() != 0 || !strings.Contains(line(out, "+14155550101"), "would update") {
		t.Fatalf("dry run: exit %d, %d writes:\n%s", code, f.writes(), out)
	}

	code, out, _ = numbers(t, "sync", "--config", cfg)
	if code != 0 {
		t.Fatalf("sync: exit %d:\n%s", code, out)
	}
	for number, want := range map[string]string{
		"+14155550101": "updated", "+14155550102": "unchanged", "+447700900101": "updated", "+447700900102": "unchanged",
		"+14155550301": "updated", "+14155550302": "created application", "+14155550401": "updated", "+14155550402": "updated",
		"+31970102030": "manual: ",
	} {
		if !strings.Contains(line(out, number), want) {
			t.Errorf("sync row %s lacks %q:\n%s", number, want, out)
		}
	}
	// Twilio 1, Vonage 1, Plivo 3 (application 100, create mogate, attach),
	// Telnyx 1: both numbers share profile p1.
	for name, n := range map[string]int{"twilio": len(f.tw.Writes()), "vonage": len(f.vo.Writes()), "plivo": len(f.pl.Writes()), "telnyx": len(f.tx.Writes())} {
		if want := map[string]int{"twilio": 1, "vonage": 1, "plivo": 3, "telnyx": 1}[name]; n != want {
			t.Errorf("%s: %d write calls, want %d", name, n, want)
		}
	}
	if got := f.tw.Number("+14155550101"); got.URL != public+"/webhooks/tw" || got.Method != "POST" {
		t.Errorf("twilio number after sync: %+v", got)
	}
	if got := f.tx.App("p9"); got.URL != "https://other.example.com" {
		t.Errorf("a profile of no pool number changed: %+v", got)
	}

	before := f.writes()
	if code, out, _ = numbers(t, "sync", "--config", cfg); code != 0 || f.writes() != before || strings.Contains(out, "updated") {
		t.Fatalf("second sync: exit %d, %d new writes:\n%s", code, f.writes()-before, out)
	}
	if code, out, _ = numbers(t, "list", "--config", cfg); code != 0 || strings.Contains(out, "points elsewhere") || f.writes() != before {
		t.Fatalf("list after sync: exit %d:\n%s", code, out)
	}
}

// TestNumbersFailures: a missing number, wrong credentials (each provider
// answers 401), a provider answering 500, --provider.
func TestNumbersFailures(t *testing.T) {
	f := startFakes(t)
	missing := numbersConfig(t, f, false, "  - {number: \"+14155550199\", provider: tw}\n")
	if code, out, _ := numbers(t, "sync", "--config", missing, "--provider", "tw"); code != 1 || !strings.Contains(line(out, "+14155550199"), "not found") ||
		strings.Contains(out, "+447700900101") {
		t.Errorf("missing number: exit %d:\n%s", code, out)
	}

	wrong := numbersConfig(t, f, true, "")
	before := f.writes()
	for _, cmd := range []string{"list", "sync"} {
		code, out, _ := numbers(t, cmd, "--config", wrong)
		if code != 1 || f.writes() != before {
			t.Errorf("%s with wrong credentials: exit %d, %d writes:\n%s", cmd, code, f.writes()-before, out)
		}
		for _, number := range []string{"+14155550101", "+447700900101", "+14155550301", "+14155550401"} {
			if l := line(out, number); !strings.Contains(l, "failed: ") || !strings.Contains(l, "401") && !strings.Contains(l, "Authenticat") {
				t.Errorf("%s: %s row: %q", cmd, number, l)
			}
		}
	}

	f.pl.Fail = 500
	code, out, _ := numbers(t, "sync", "--config", numbersConfig(t, f, false, ""), "--provider", "pl")
	if code != 1 || !strings.Contains(line(out, "+14155550301"), "failed: HTTP 500") {
		t.Errorf("plivo 500: exit %d:\n%s", code, out)
	}

	if code, _, errs := numbers(t, "sync", "--config", wrong, "--provider", "nope"); code != 1 || !strings.Contains(errs, `no provider entry named "nope"`) {
		t.Errorf("unknown --provider: exit %d %s", code, errs)
	}
	if code, _, _ := numbers(t, "sync"); code != 2 {
		t.Errorf("no --config: exit %d", code)
	}
	if code, _, _ := numbers(t, "frob"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}

// TestNumbersUnreachable: an api_url where nothing listens fails each
// entry's rows in words naming that URL (not the provider's public host,
// not vonage-go-sdk's panic), and exits 1.
func TestNumbersUnreachable(t *testing.T) {
	f := startFakes(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	path := numbersConfig(t, f, false, "")
	b, _ := os.ReadFile(path)
	y := string(b)
	for _, u := range []string{f.tw.URL, f.vo.URL, f.pl.URL, f.tx.URL} {
		y = strings.Replace(y, u, closed, 1)
	}
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"list", "sync"} {
		code, out, errs := numbers(t, cmd, "--config", path)
		if code != 1 {
			t.Errorf("%s: exit %d", cmd, code)
		}
		for _, number := range []string{"+14155550101", "+447700900101", "+14155550301", "+14155550401"} {
			if l := line(out, number); !strings.Contains(l, "failed: cannot reach "+closed+": connection refused") {
				t.Errorf("%s: %s row: %q", cmd, number, l)
			}
		}
		for _, bad := range []string{"panic", "interface conversion", "api.twilio.com", "api.plivo.com", "rest.nexmo.com", "api.telnyx.com"} {
			if strings.Contains(out+errs, bad) {
				t.Errorf("%s: output says %q:\n%s%s", cmd, bad, out, errs)
			}
		}
	}
}

// TestNumbersEchoedErrors: provider APIs whose error bodies echo the
// request (Authorization header, query, form) print none of it: no
// credential raw, URL-encoded or in its HTTP Basic form.
func TestNumbersEchoedErrors(t *testing.T) {
	f := startFakes(t)
	for _, fake := range []*pt.Fake{f.tw, f.vo, f.pl, f.tx} {
		fake.Echo = 401
	}
	cfg := numbersConfig(t, f, false, "")
	forbidden := []string{"Authorization", "Basic ", "Bearer ", "body:",
		base64.StdEncoding.EncodeToString([]byte("AC0123456789abcdef:" + twToken)),
		base64.StdEncoding.EncodeToString([]byte("MA0123:" + plToken))}
	for _, s := range secrets {
		forbidden = append(forbidden, url.QueryEscape(s))
	}
	for _, cmd := range []string{"list", "sync"} {
		code, out, errs := numbers(t, cmd, "--config", cfg)
		if code != 1 {
			t.Errorf("%s: exit %d", cmd, code)
		}
		for _, s := range forbidden {
			if strings.Contains(out+errs, s) {
				t.Errorf("%s: output carries %q:\n%s%s", cmd, s, out, errs)
			}
		}
		for number, fake := range map[string]*pt.Fake{"+14155550101": f.tw, "+447700900101": f.vo, "+14155550301": f.pl, "+14155550401": f.tx} {
			if l := line(out, number); !strings.Contains(l, "failed: HTTP 401 Unauthorized from "+fake.URL) {
				t.Errorf("%s: %s row: %q", cmd, number, l)
			}
		}
	}
}

// TestNumbersNoRedirects: a provider API that answers with a redirect to
// another host is not followed (Vonage's api_secret travels in the query,
// which a redirect would carry along): the other host sees no request and
// the row fails naming the redirect.
func TestNumbersNoRedirects(t *testing.T) {
	f := startFakes(t)
	var hits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	path := numbersConfig(t, f, false, "")
	b, _ := os.ReadFile(path)
	y := string(b)
	for _, u := range []string{f.tw.URL, f.vo.URL, f.pl.URL, f.tx.URL} {
		y = strings.Replace(y, u, redirector.URL, 1)
	}
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := numbers(t, "list", "--config", path)
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times:\n%s", n, out)
	}
	if l := line(out, "+447700900101"); !strings.Contains(l, "failed: ") || !strings.Contains(l, "302") {
		t.Errorf("vonage row: %q", l)
	}
}

// TestNumbersChannels: `numbers list` shows each number's channels (the
// provider type's default when the entry lists none), and `numbers sync`
// passes them on, so a Twilio number that lists call gets its VoiceUrl.
func TestNumbersChannels(t *testing.T) {
	f := startFakes(t)
	cfg := numbersConfig(t, f, false, "")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`{number: "+14155550101", provider: tw}`), []byte(`{number: "+14155550101", provider: tw, channels: [sms, call]}`), 1)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := numbers(t, "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "CHANNELS") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if l := line(out, "+14155550101"); !strings.Contains(l, " sms,call ") {
		t.Errorf("+14155550101 does not list sms,call: %q", l)
	}
	if l := line(out, "+447700900101"); !strings.Contains(l, " sms ") {
		t.Errorf("+447700900101 does not list its default sms: %q", l)
	}
	numbers(t, "sync", "--config", cfg)
	if n := f.tw.Number("+14155550101"); n == nil || n.VoiceURL != public+"/webhooks/tw" {
		t.Errorf("the call number's VoiceUrl = %+v, want %s/webhooks/tw", n, public)
	}
	if n := f.tw.Number("+14155550102"); n == nil || n.VoiceURL != "" {
		t.Errorf("an sms-only number's VoiceUrl was set: %+v", n)
	}
}
