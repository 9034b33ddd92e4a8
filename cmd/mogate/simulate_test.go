package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/config"
)

// TestSimulateURLNeedsYes: a --url that is neither public_url nor loopback
// is refused (exit 2) before anything is sent, the API key included.
func TestSimulateURLNeedsYes(t *testing.T) {
	const key = "shop-key-0123456789"
	path := filepath.Join(t.TempDir(), "mogate.yaml")
	y := `public_url: https://sms.example.com
api_keys:
  - {name: shop, key: ` + key + `}
providers:
  - {name: tw, type: twilio, auth_token: tw-token-0123456789}
numbers:
  - {number: "+14155550101", provider: tw}
`
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--config", path, "--url", "https://example.invalid"},
		{"--config", path, "--url", "https://sms.example.com.example.invalid/"},
		{"--config", path, "--url", "http://10.1.2.3:8080", "--api-key", "other-key-0123456789"},
		{"--data-dir", devDir(t), "--url", "http://example.invalid:8080"},
	} {
		var sout, serr bytes.Buffer
		code := run(append([]string{"sms", "simulate", "--from", "+14155550123", "--text", "123456"}, args...), &sout, &serr)
		if code != 2 || !strings.Contains(serr.String(), "--yes") || sout.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2, a hint at --yes and nothing sent", args, code, sout.String(), serr.String())
		}
		if strings.Contains(serr.String(), key) || strings.Contains(serr.String(), "other-key") {
			t.Errorf("%v: the error shows the API key", args)
		}
	}
}

// devDir is a dev-mode data directory with its credentials.
func devDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := config.Dev(dir, true); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSimulateLoopbackURL: a loopback --url is posted to without --yes.
func TestSimulateLoopbackURL(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	var sout, serr bytes.Buffer
	code := run([]string{"sms", "simulate", "--data-dir", devDir(t), "--url", srv.URL, "--from", "+14155550123", "--text", "1"}, &sout, &serr)
	if code != 1 || hits.Load() == 0 {
		t.Fatalf("exit %d after %d requests; want the loopback server asked (exit 1 for its 403): %s", code, hits.Load(), serr.String())
	}
}

func TestCheckTarget(t *testing.T) {
	const public = "https://sms.example.com"
	for _, tc := range []struct {
		url string
		yes bool
		ok  bool
	}{
		{"https://sms.example.com", false, true},
		{"https://SMS.example.com/", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://127.1.2.3:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://[::ffff:127.0.0.1]:8080", false, true},
		{"https://example.invalid", false, false},
		{"https://example.invalid", true, true},
		{"http://sms.example.com", false, false}, // not the same scheme
		{"https://sms.example.com:8443", false, false},
		{"https://sms.example.com/other", false, false},
		{"https://user:pw@sms.example.com", false, false},
		{"http://10.0.0.1", false, false},
		{"http://localhost.example.com", false, false},
		{"ftp://127.0.0.1", true, false},
		{"127.0.0.1:8080", true, false},
	} {
		err := checkTarget(tc.url, public, tc.yes)
		if (err == nil) != tc.ok {
			t.Errorf("checkTarget(%q, yes=%v) = %v, want ok %v", tc.url, tc.yes, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("checkTarget(%q): error shows the URL's password: %v", tc.url, err)
		}
	}
}

// TestSimulateFindsTheSessionsKey: with --config and no --api-key, sms
// simulate asks the API with each key of the file and reports on the
// session of whichever key created it (here the second), not "no session".
func TestSimulateFindsTheSessionsKey(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	const first, second = "first-key-0000000000001", "second-key-000000000002"
	cfgPath := filepath.Join(dir, "mogate.yaml")
	writeFile(t, cfgPath, signalConfig(addr, "", filepath.Join(dir, "data"), "", first, second))
	startServer(t, cfgPath, base)
	code, body := call(t, "POST", base+"/v1/verifications", second, `{"number":"+14155550123"}`)
	if code != 201 {
		t.Fatalf("create = %d %s", code, body)
	}
	var v struct{ ID, Code string }
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"sms", "simulate", "--config", cfgPath, "--from", "+14155550123", "--text", v.Code}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "verified: "+v.ID) {
		t.Fatalf("simulate did not report the second key's session:\n%s", out.String())
	}
}

// TestSimulateKeysOnlyToTrustedTargets: names under .localhost are not
// loopback (DNS answers for them), and a --url let through by --yes is
// sent --api-key's key alone, never every key of the file.
func TestSimulateKeysOnlyToTrustedTargets(t *testing.T) {
	const public = "https://sms.example.com"
	for _, u := range []string{"http://x.localhost:8080", "http://localhost.:8080", "http://evil.localhost"} {
		if trustedTarget(u, public) {
			t.Errorf("%s taken as loopback", u)
		}
		if checkTarget(u, public, false) == nil {
			t.Errorf("%s accepted without --yes", u)
		}
	}
	dir := t.TempDir()
	const first, second = "first-key-0000000000001", "second-key-000000000002"
	cfgPath := filepath.Join(dir, "mogate.yaml")
	writeFile(t, cfgPath, signalConfig(freeAddr(t), "", filepath.Join(dir, "data"), "", first, second))
	cfg, err := registry.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const flag, dev = "explicit-key-00000000001", "dev-key-0000000000000001"
	for _, tc := range []struct {
		flag, key string
		trusted   bool
		want      []string
	}{
		{"", "", true, []string{first, second}},
		{flag, flag, true, []string{flag}},
		{"", dev, true, []string{dev}},
		{"", "", false, []string{""}},
		{"", dev, false, []string{""}},
		{flag, flag, false, []string{flag}},
	} {
		if keys := simulateKeys(tc.flag, tc.key, cfg, tc.trusted); !slices.Equal(keys, tc.want) {
			t.Errorf("simulateKeys(%q, %q, trusted %v) = %q, want %q", tc.flag, tc.key, tc.trusted, keys, tc.want)
		}
	}
}
