package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	waitReady(t, "http://"+addr, out)
	return cmd, out
}

// waitReady waits until base answers /readyz with 200.
func waitReady(t *testing.T, base string, out *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
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

// TestREADMEWalkthrough runs the sh blocks of the README's walkthrough as
// written, in one bash, in a directory holding ./bin/mogate: "make run" is
// `./bin/mogate serve` there (what make run starts after building), the
// rm -rf block runs after Ctrl-C (SIGINT). The only edit is the address:
// 127.0.0.1:8080 becomes a free port.
func TestREADMEWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	section = section[strings.Index(section, "## Two-minute walkthrough"):]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	var script, reset []string
	started := false
	for _, block := range strings.Split(section, "```sh\n")[1:] {
		block = block[:strings.Index(block, "```")]
		switch {
		case strings.TrimSpace(block) == "make run":
			started = true
		case strings.HasPrefix(block, "rm -rf"):
			reset = append(reset, block)
		default:
			script = append(script, block)
		}
	}
	if !started || len(script) < 4 || len(reset) != 1 {
		t.Fatalf("walkthrough blocks not found: make run %v, %d blocks, reset %q", started, len(script), reset)
	}
	dir, addr := t.TempDir(), freeAddr(t)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(dir, "bin", "mogate")); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	srv := exec.Command("./bin/mogate", "serve", "--listen", addr)
	srv.Dir, srv.Stdout, srv.Stderr = dir, out, out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	waitReady(t, "http://"+addr, out)
	creds, err := config.LoadDevCredentials(filepath.Join(dir, "mogate-data"), false)
	if err != nil || !strings.Contains(out.String(), creds.APIKey) || !strings.Contains(out.String(), creds.AuthToken) {
		t.Fatalf("dev banner lacks the credentials (%v):\n%s", err, out)
	}

	bash := func(blocks []string) string {
		t.Helper()
		sh := "set -eu\n" + strings.ReplaceAll(strings.Join(blocks, "echo '#####'\n"), "127.0.0.1:8080", addr)
		cmd := exec.Command("bash", "-c", sh)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\nscript:\n%s\noutput:\n%s", err, sh, b)
		}
		return string(b)
	}
	got := strings.Split(bash(script), "#####\n")
	if len(got) != len(script) {
		t.Fatalf("blocks ran: %d of %d", len(got), len(script))
	}
	checks := []struct {
		block int
		want  []string
	}{
		{0, []string{`"status":"pending"`, `"number":"+14155550123"`}},
		{1, []string{"200 OK", "<Response/>", "verified: vrf_", "(verified_number +14155550123)"}},
		{2, []string{`"status":"verified"`, `"verified_number":"+14155550123"`, `"reason":null`}},
		{3, []string{`"status":"pending"`, "wrong code 1 of 3: vrf_", "still pending", "no session: no pending verification expects a message from +14155550199", "\n403\n"}},
	}
	for _, c := range checks {
		for _, w := range c.want {
			if !strings.Contains(got[c.block], w) {
				t.Errorf("block %d output lacks %q:\n%s", c.block, w, got[c.block])
			}
		}
	}

	// Dev mode's key has no webhook_url: terminal 1 shows each event as it
	// would have been sent, as the README says.
	for _, want := range []string{
		`msg="event not sent: no callback_url or webhook_url" type=verification.verified event=`,
		"webhook_id=evt_",
	} {
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), want); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the server output lacks %q:\n%s", want, out)
			}
		}
	}

	// Ctrl-C: a graceful stop, exit 0, the recorded address gone; then the reset.
	_ = srv.Process.Signal(os.Interrupt)
	if err := srv.Wait(); err != nil {
		t.Fatalf("exit after Ctrl-C: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "mogate-data", devAddressFile)); !os.IsNotExist(err) {
		t.Fatalf("dev-address left behind: %v", err)
	}
	bash(reset)
	if _, err := os.Stat(filepath.Join(dir, "mogate-data")); !os.IsNotExist(err) {
		t.Fatalf("mogate-data after the reset: %v", err)
	}
	if strings.Contains(out.String(), "panic") {
		t.Fatalf("output: %s", out)
	}
}

// A forged signature (another data dir's auth token) is refused, and
// simulate says so with a non-zero exit.
func TestSimulateForged(t *testing.T) {
	dataDir, addr := t.TempDir(), freeAddr(t)
	startDev(t, dataDir, addr)
	other := t.TempDir()
	if _, _, err := config.Dev(other, true); err != nil {
		t.Fatal(err)
	}
	var sout, serr bytes.Buffer
	if code := run([]string{"sms", "simulate", "--data-dir", other, "--url", "http://" + addr, "--from", "+14155550123", "--text", "x"}, &sout, &serr); code == 0 || !strings.Contains(sout.String(), "403") {
		t.Fatalf("forged simulate: exit %d %s", code, sout.String())
	}
}

func TestSimulateWithoutServerOrCredentials(t *testing.T) {
	var sout, serr bytes.Buffer
	if code := run([]string{"sms", "simulate", "--data-dir", t.TempDir(), "--from", "+14155550123", "--text", "1"}, &sout, &serr); code != 1 || !strings.Contains(serr.String(), "make run") {
		t.Fatalf("exit %d: %s", code, serr.String())
	}
	if code := run([]string{"sms", "simulate", "--text", "1"}, &sout, &serr); code != 2 {
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
