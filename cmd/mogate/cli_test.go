package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mogate/mogate/config"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mogate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mogate")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDev runs `mogate serve` in dev mode and waits for /readyz.
func startDev(t *testing.T, dataDir, addr string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(binary, "serve", "--data-dir", dataDir, "--listen", addr)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mogate did not become ready:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer is written by the subprocess copier and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestWalkthrough is the README's two-minute walkthrough, step by step.
func TestWalkthrough(t *testing.T) {
	dataDir, addr := t.TempDir(), freeAddr(t)
	cmd, out := startDev(t, dataDir, addr)
	creds, err := config.LoadDevCredentials(dataDir, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), creds.APIKey) || !strings.Contains(out.String(), creds.AuthToken) {
		t.Fatalf("dev banner lacks the credentials:\n%s", out)
	}

	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/verifications", strings.NewReader(`{"number":"+14155550123"}`))
	req.Header.Set("Authorization", "Bearer "+creds.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ ID, Code, To, Status string }
	_ = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != 201 || v.To != config.DevNumbers[0] {
		t.Fatalf("create = %d %+v", resp.StatusCode, v)
	}

	var sout, serr bytes.Buffer
	if code := run([]string{"sms", "simulate", "--data-dir", dataDir, "--url", "http://" + addr, "--from", "+14155550123", "--text", "my code is " + v.Code}, &sout, &serr); code != 0 {
		t.Fatalf("simulate exit %d: %s %s", code, sout.String(), serr.String())
	}
	if !strings.Contains(sout.String(), "200 OK") || !strings.Contains(sout.String(), "<Response/>") {
		t.Fatalf("simulate output: %s", sout.String())
	}

	req, _ = http.NewRequest("GET", "http://"+addr+"/v1/verifications/"+v.ID, nil)
	req.Header.Set("Authorization", "Bearer "+creds.APIKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Status         string `json:"status"`
		VerifiedNumber string `json:"verified_number"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got.Status != "verified" || got.VerifiedNumber != "+14155550123" {
		t.Fatalf("after simulate: %+v", got)
	}

	// A wrong auth token (another data dir) is refused by the running server.
	other := t.TempDir()
	if _, _, err := config.Dev(other, true); err != nil {
		t.Fatal(err)
	}
	sout.Reset()
	if code := run([]string{"sms", "simulate", "--data-dir", other, "--url", "http://" + addr, "--from", "+14155550123", "--text", "x"}, &sout, &serr); code == 0 || !strings.Contains(sout.String(), "403") {
		t.Fatalf("forged simulate: exit %d %s", code, sout.String())
	}

	// SIGTERM: graceful stop, exit status 0.
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, out)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("shutdown too slow")
	}
	if strings.Contains(out.String(), "panic") {
		t.Fatalf("output: %s", out)
	}
}

func TestSimulateWithoutServerOrCredentials(t *testing.T) {
	var sout, serr bytes.Buffer
	if code := run([]string{"sms", "simulate", "--data-dir", t.TempDir(), "--from", "+14155550123", "--text", "1"}, &sout, &serr); code != 1 || !strings.Contains(serr.String(), "make run") {
		t.Fatalf("exit %d: %s", code, serr.String())
	}
	if code := run([]string{"sms", "simulate", "--text", "1"}, &sout, &serr); code != 1 {
		t.Fatalf("missing --from: exit %d", code)
	}
	if code := run([]string{"nope"}, &sout, &serr); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	sout.Reset()
	if code := run([]string{"version"}, &sout, &serr); code != 0 || !strings.HasPrefix(sout.String(), "mogate ") {
		t.Fatalf("version: %d %s", code, sout.String())
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	f := filepath.Join(t.TempDir(), "m.yaml")
	_ = os.WriteFile(f, []byte("listen: 127.0.0.1:0\nbogus: 1\n"), 0o600)
	var sout, serr bytes.Buffer
	if code := run([]string{"serve", "--config", f}, &sout, &serr); code != 1 || !strings.Contains(serr.String(), `line 2: unknown key "bogus"`) {
		t.Fatalf("exit %d: %s", code, serr.String())
	}
}

// TestConformanceAgainstServe is the issue's acceptance check: `mogate
// conformance run` passes against `mogate serve --config <(mogate
// conformance config)`.
func TestConformanceAgainstServe(t *testing.T) {
	addr := freeAddr(t)
	var cfg, errb bytes.Buffer
	if code := run([]string{"conformance", "config", "--listen", addr, "--data-dir", t.TempDir()}, &cfg, &errb); code != 0 {
		t.Fatalf("conformance config: %s", errb.String())
	}
	path := filepath.Join(t.TempDir(), "conformance.yaml")
	if err := os.WriteFile(path, cfg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	startServer(t, path, "http://"+addr)
	var out bytes.Buffer
	if code := run([]string{"conformance", "run", "--target", "http://" + addr}, &out, &errb); code != 0 {
		t.Fatalf("conformance run failed:\n%s\n%s", out.String(), errb.String())
	}
	if !strings.Contains(out.String(), " 0 failed") || !strings.Contains(out.String(), "vonage-messages") {
		t.Fatalf("output:\n%s", out.String())
	}
	// --provider limits the run; an unknown provider is an error.
	out.Reset()
	if code := run([]string{"conformance", "run", "--target", "http://" + addr, "--provider", "plivo"}, &out, &errb); code != 0 || strings.Contains(out.String(), "twilio") {
		t.Fatalf("--provider plivo:\n%s", out.String())
	}
	if code := run([]string{"conformance", "run", "--target", "http://" + addr, "--provider", "nope"}, &out, &errb); code == 0 {
		t.Fatal("unknown provider accepted")
	}
}
