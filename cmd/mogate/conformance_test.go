package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mogate/mogate/conformance"
	"github.com/mogate/mogate/gateway/client"
)

// TestConformanceAgainstDeployment runs `conformance run --config F` the
// way an operator would against a deployment: F has its own entry names,
// its own numbers and the default limits; the run signs with F's entries,
// leaves nothing pending, refuses a target whose pool differs from F, and
// names the target's public_url when the run signs for another.
func TestConformanceAgainstDeployment(t *testing.T) {
	addr := freeAddr(t)
	var gen, errb bytes.Buffer
	if code := run([]string{"conformance", "config", "--listen", addr, "--data-dir", t.TempDir()}, &gen, &errb); code != 0 {
		t.Fatalf("conformance config: %s", errb.String())
	}
	var lines []string
	for _, l := range strings.Split(gen.String(), "\n") {
		if !strings.HasPrefix(l, "limits:") { // the deployment runs with the default limits
			lines = append(lines, l)
		}
	}
	f := strings.Join(lines, "\n")
	f = strings.Replace(f, "name: twilio\n", "name: tw-main\n", 1)
	f = strings.ReplaceAll(f, "provider: twilio,", "provider: tw-main,")
	f = strings.Replace(f, `"+14155550100", provider: tw-main`, `"+14155550177", provider: tw-main`, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "deployment.yaml")
	if err := os.WriteFile(path, []byte(f), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	startServer(t, path, base)
	key := conformance.APIKey
	api := client.New(base, key, nil)
	leftPending := func() int {
		t.Helper()
		n := 0
		for _, sender := range []string{"+14155550101", "+14155550106", "+447700900006"} {
			l, err := api.Pending(context.Background(), sender)
			if err != nil {
				t.Fatal(err)
			}
			n += len(l)
		}
		return n
	}

	var out bytes.Buffer
	if code := run([]string{"conformance", "run", "--config", path, "--target", base, "--api-key", key}, &out, &errb); code != 0 {
		t.Fatalf("run against the deployment:\n%s\n%s", out.String(), errb.String())
	}
	if !strings.Contains(out.String(), " 0 failed") || !strings.Contains(out.String(), "\ntwilio\n") || strings.Count(out.String(), "skipping sns") != 1 {
		t.Fatalf("output:\n%s", out.String())
	}
	if n := leftPending(); n != 0 {
		t.Fatalf("%d verifications left pending", n)
	}

	// Without --api-key the run does not guess one.
	if code := run([]string{"conformance", "run", "--config", path, "--target", base}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--api-key is required") {
		t.Fatalf("without --api-key: exit %d %s", code, errb.String())
	}
	// A pool that differs from the file: refused before any request.
	other := filepath.Join(dir, "other.yaml")
	g := strings.Replace(f, "numbers:\n", "numbers:\n  - {number: \"+14155550199\", provider: tw-main}\n", 1)
	if err := os.WriteFile(other, []byte(g), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"conformance", "run", "--config", other, "--target", base, "--api-key", key}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "pool does not match") || !strings.Contains(errb.String(), "+14155550199") {
		t.Fatalf("other pool: exit %d %s", code, errb.String())
	}
	// Signing for the wrong public URL: failures say what to check, and
	// the sessions are cancelled.
	out.Reset()
	if code := run([]string{"conformance", "run", "--config", path, "--target", base, "--api-key", key, "--provider", "twilio", "--public-url", "https://elsewhere.example"}, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "signed for https://elsewhere.example (--public-url): pass --public-url "+base) {
		t.Fatalf("wrong public URL: exit %d\n%s", code, out.String())
	}
	if n := leftPending(); n != 0 {
		t.Fatalf("%d verifications left pending after failed deliveries", n)
	}
}
