package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// signalConfig is a configuration for the signal tests: keys names each
// API key entry's key (name = key's first word).
func signalConfig(addr, admin, dataDir, extra string, keys ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\npublic_url: http://%s\ndata_dir: %s\n", addr, addr, dataDir)
	if admin != "" {
		fmt.Fprintf(&b, "admin_listen: %s\n", admin)
	}
	b.WriteString("api_keys:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  - {name: %s, key: %s}\n", strings.SplitN(k, "-", 2)[0], k)
	}
	fmt.Fprintf(&b, "providers: [{name: twilio, type: twilio, auth_token: %s}]\n", crashToken)
	b.WriteString(`numbers: [{number: "+14155550100", provider: twilio, countries: ["*"]}]` + "\n")
	b.WriteString("limits: {creates_per_number_per_hour: 0}\n")
	b.WriteString(extra)
	return b.String()
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// call makes one API request with key and returns the status and body.
func call(t *testing.T, method, u, key, body string) (int, string) {
	t.Helper()
	return callCtx(context.Background(), t, method, u, key, body)
}

// callCtx is call with the request's context, such as one carrying an
// httptrace.ClientTrace.
func callCtx(ctx context.Context, t *testing.T, method, u, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration, out *lockedBuffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v (want status 0)\n%s", err, out)
		}
	case <-time.After(within):
		t.Fatalf("no exit within %s\n%s", within, out)
	}
}

// TestSIGTERMDrain runs the real binary: after SIGTERM /readyz answers 503
// for shutdown_delay while the API still answers 200, a long-poll in flight
// then gets the current state at once, and the process exits 0 with its
// state on disk. /metrics is on admin_listen only.
func TestSIGTERMDrain(t *testing.T) {
	dir := t.TempDir()
	addr, admin := freeAddr(t), freeAddr(t)
	base := "http://" + addr
	const key = "drain-key-000000000001"
	cfgPath := filepath.Join(dir, "mogate.yaml")
	writeFile(t, cfgPath, signalConfig(addr, admin, filepath.Join(dir, "data"), "shutdown_delay: 2s\n", key))
	cmd, out := startServer(t, cfgPath, base)

	if code, _ := call(t, "GET", base+"/metrics", "", ""); code != 404 {
		t.Fatalf("public /metrics = %d, want 404 with admin_listen", code)
	}
	if code, body := call(t, "GET", "http://"+admin+"/metrics", "", ""); code != 200 || !strings.Contains(body, "mogate_build_info") {
		t.Fatalf("admin /metrics = %d", code)
	}
	code, body := call(t, "POST", base+"/v1/verifications", key, `{"number":"+14155550123"}`)
	if code != 201 {
		t.Fatalf("create = %d %s", code, body)
	}
	id := body[strings.Index(body, `"id":"`)+6:]
	id = id[:strings.Index(id, `"`)]

	polled := make(chan string, 1)
	sent := make(chan struct{})
	wrote := sync.OnceFunc(func() { close(sent) })
	trace := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote() },
	})
	go func() {
		code, body := callCtx(trace, t, "GET", base+"/v1/verifications/"+id+"?wait=60s", key, "")
		polled <- fmt.Sprint(code, " ", strings.Contains(body, `"status":"pending"`))
	}()
	select {
	case <-sent: // on the wire before SIGTERM: the server reads it during shutdown_delay
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll was not sent")
	}
	term := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	saw503 := false
	for time.Since(term) < 1500*time.Millisecond {
		ready, _ := call(t, "GET", base+"/readyz", "", "")
		get, _ := call(t, "GET", base+"/v1/verifications/"+id, key, "")
		if ready == 503 {
			saw503 = true
			if get != 200 {
				t.Fatalf("during shutdown_delay the API answered %d", get)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !saw503 {
		t.Fatalf("/readyz never answered 503 during shutdown_delay\n%s", out)
	}
	select {
	case got := <-polled:
		if got != "200 true" {
			t.Fatalf("long-poll at shutdown = %s, want 200 with the pending state", got)
		}
		if took := time.Since(term); took < 2*time.Second || took > 5*time.Second {
			t.Fatalf("long-poll answered %s after SIGTERM, want right after the 2s delay", took)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("the long-poll was not answered at shutdown")
	}
	waitExit(t, cmd, 15*time.Second, out)
	// Durations in the JSON log are milliseconds, named *_ms.
	for msg, field := range map[string]map[string]float64{
		"state recovered": {"took_ms": -1},
		"SIGTERM: /readyz answers 503, then the listener closes": {"shutdown_delay_ms": 2000},
		"draining": {"at_most_ms": 10000},
		"request":  {"duration_ms": -1},
	} {
		for name, want := range field {
			if got, ok := logField(out.String(), msg, name).(float64); !ok || want >= 0 && got != want {
				t.Errorf("%q: %s = %v, want %v ms\n%s", msg, name, logField(out.String(), msg, name), want, out)
			}
		}
	}
	// The final snapshot has the session: a restart serves it.
	cmd, _ = startServer(t, cfgPath, base)
	if code, _ := call(t, "GET", base+"/v1/verifications/"+id, key, ""); code != 200 {
		t.Fatalf("after restart = %d", code)
	}
	_ = cmd.Process.Signal(syscall.SIGINT) // Ctrl-C: no delay
	waitExit(t, cmd, 12*time.Second, out)
}

// TestSIGHUPReload runs the real binary: SIGHUP adds an API key that then
// works and removes one that then gets 401; a broken file is logged and
// the running configuration kept; a pending session and its open SSE
// stream survive both and see the verification.
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	const a, b, c = crashKey, "bee-key-0000000000000002", "sea-key-0000000000000003"
	cfgPath := filepath.Join(dir, "mogate.yaml")
	data := filepath.Join(dir, "data")
	writeFile(t, cfgPath, signalConfig(addr, "", data, "", a, b))
	cmd, out := startServer(t, cfgPath, base)

	s, ok := createSession(http.DefaultClient, base, "+14155550123")
	if !ok {
		t.Fatal("create failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/verifications/"+s.id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+a)
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("stream: %v", err)
	}
	defer stream.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data:") {
				events <- sc.Text()
			}
		}
		close(events)
	}()
	<-events // the current status

	hup := func(wantLog string) {
		t.Helper()
		before := strings.Count(out.String(), wantLog)
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(out.String(), wantLog) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q after SIGHUP\n%s", wantLog, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	reloadOK := func(want string) {
		t.Helper()
		if _, body := call(t, "GET", base+"/metrics", "", ""); !strings.Contains(body, "\nmogate_config_reload_success "+want+"\n") {
			t.Fatalf("mogate_config_reload_success is not %s:\n%s", want, body)
		}
	}
	writeFile(t, cfgPath, signalConfig(addr, "", data, "log_level: debug\n", a, c))
	hup("configuration reloaded")
	reloadOK("1")
	if code, _ := call(t, "GET", base+"/v1/numbers", c, ""); code != 200 {
		t.Fatalf("added key = %d", code)
	}
	if code, _ := call(t, "GET", base+"/v1/numbers", b, ""); code != 401 {
		t.Fatalf("removed key = %d", code)
	}
	call(t, "GET", base+"/readyz", "", "") // its access line is at debug level
	// The access line is written once the answer is out: wait for it.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), `"level":"DEBUG"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("log_level: debug not applied\n%s", out)
		}
	}

	writeFile(t, cfgPath, "api_keys: [\n")
	hup("configuration not reloaded")
	reloadOK("0")
	writeFile(t, cfgPath, signalConfig(addr, "", data, "", a)+"bogus_key: 1\n")
	hup("configuration not reloaded")
	if code, _ := call(t, "GET", base+"/v1/numbers", c, ""); code != 200 {
		t.Fatalf("after a broken file, the running key = %d", code)
	}

	if !sendSMS(http.DefaultClient, base, s.from, "code "+s.code, "SMhup1") {
		t.Fatal("the verifying webhook was refused")
	}
	select {
	case ev := <-events:
		if !strings.Contains(ev, `"status":"verified"`) {
			t.Fatalf("stream event after reloads = %s", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream opened before the reloads saw no verification")
	}
	if _, alive := <-events; alive {
		t.Fatal("the stream did not end after the final status")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	waitExit(t, cmd, 12*time.Second, out)
	// The process's whole log, access and lifecycle lines included, holds
	// no key, token, message text or full sender.
	for _, secret := range []string{a, b, c, crashToken, "code " + s.code, s.from} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("%q is in the log", secret)
		}
	}
	if !strings.Contains(out.String(), `"msg":"verification verified"`) {
		t.Errorf("no lifecycle line for the verification:\n%s", out)
	}
}

// logField returns field of the first JSON log line whose msg is msg; nil
// when there is none.
func logField(log, msg, field string) any {
	for line := range strings.Lines(log) {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil || l["msg"] != msg {
			continue
		}
		return l[field]
	}
	return nil
}
