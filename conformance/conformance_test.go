package conformance

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters/sns/snstest"
	"github.com/mogate/mogate/cmd/mogate/app"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway"
)

// TestConformance runs every fixture and its derived variants against an
// in-process mogate started with Config.
func TestConformance(t *testing.T) {
	fixtures, err := Load(os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, f := range fixtures {
		counts[f.Provider]++
	}
	for p, n := range counts {
		if n < 6 {
			t.Errorf("provider %s has %d fixtures, want at least 6", p, n)
		}
	}
	base, aws := startTarget(t, fixtures, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	results := Run(ctx, Target{BaseURL: base, AdapterHTTP: &http.Client{Transport: aws}}, fixtures, "")
	if len(aws.Confirmed()) == 0 {
		t.Error("no SNS subscription was confirmed")
	}
	variants := map[string]int{}
	for _, r := range results {
		variants[r.Variant]++
		t.Run(r.Provider+"/"+r.Case+"/"+r.Variant, func(t *testing.T) {
			if !r.OK {
				t.Fatal(r.Detail)
			}
		})
	}
	handshakes := 0
	for _, f := range fixtures {
		if f.Handshake {
			handshakes++
		}
	}
	if handshakes < 2 || variants["handshake"] != handshakes {
		t.Errorf("handshake ran %d times for %d handshake fixtures (want at least the right and the wrong token)", variants["handshake"], handshakes)
	}
	messages := len(fixtures) - handshakes
	for _, v := range []string{"parse", "bad signature", "deliver", "duplicate"} {
		if variants[v] != messages {
			t.Errorf("variant %q ran %d times for %d fixtures", v, variants[v], messages)
		}
	}
	basic := counts["bandwidth"] + counts["infobip"] // HTTP Basic: no payload signature
	if variants["tampered body"] != messages-basic {
		t.Errorf("tampered body ran %d times, want %d", variants["tampered body"], messages-basic)
	}
	if variants["stale timestamp"] == 0 {
		t.Error("no stale-timestamp variant ran")
	}
}

// startTarget serves Config(fixtures) in-process; edit, when not nil,
// changes the configuration's text first.
func startTarget(t *testing.T, fixtures []Fixture, edit func(string) string) (string, *snstest.AWS) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	yaml := Config(fixtures, ln.Addr().String(), base, t.TempDir())
	if edit != nil {
		yaml = edit(yaml)
	}
	cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("Config() is not a valid configuration: %v\n%s", err, yaml)
	}
	// AWS's side of SNS: the certificate of the fixtures' key, and the
	// subscription confirmations.
	aws := &snstest.AWS{}
	for _, f := range fixtures {
		if f.Provider == "sns" {
			key, err := snstest.ParseKey(f.Secrets["private_key"])
			if err != nil {
				t.Fatal(err)
			}
			aws.Cert = snstest.Certificate(key)
		}
	}
	srv, _, err := app.New(gateway.Options{Config: cfg, HTTP: &http.Client{Transport: aws}}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return base, aws
}

// TestRunnerCatchesBrokenTarget proves the suite can fail: a target whose
// secrets differ from the fixtures' refuses every genuine delivery.
func TestRunnerCatchesBrokenTarget(t *testing.T) {
	fixtures, err := Load(os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	var twilio []Fixture
	for _, f := range fixtures {
		if f.Provider == "sns" {
			continue
		}
		if f.Provider == "twilio" {
			f.Secrets = map[string]string{"auth_token": "not-the-target-token"}
			twilio = append(twilio, f)
		}
	}
	base, _ := startTarget(t, fixtures, nil)
	results := Run(context.Background(), Target{BaseURL: base}, twilio[:1], "")
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	if failed == 0 {
		t.Fatalf("a target with other secrets passed: %+v", results)
	}
}

func TestLoadRejectsBadFixtures(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(dir+"/twilio", 0o700)
	os.WriteFile(dir+"/twilio/x.json", []byte(`{"provider":"plivo","requests":[{"method":"POST","path":"/"}],"expect":{"status":200}}`), 0o600)
	os.WriteFile(dir+"/twilio/y.json", []byte(`{"provider":"twilio","bogus":1}`), 0o600)
	_, err := Load(os.DirFS(dir))
	if err == nil || !strings.Contains(err.Error(), `provider "plivo" in folder "twilio"`) || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("Load = %v", err)
	}
}
