package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters/twilio"
)

const (
	crashKey   = "crash-test-api-key-0001"
	crashToken = "crash-test-twilio-token"
)

type acked struct {
	id, code, from string
	verified       bool   // the verifying webhook got its 200
	verifiedAt     string // first verified_at seen
	messageID      string
}

// TestCrashRecovery runs mogate serve, loads it from several goroutines with
// creates and signed webhooks, kill -9s it at random moments several times,
// restarts it, and checks that every acknowledged create and verification
// is there, with the right status, and that no session is verified twice.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "mogate.yaml")
	cfg := fmt.Sprintf(`listen: %s
public_url: http://%s
data_dir: %s
api_keys: [{name: crash, key: %s}]
providers: [{name: twilio, type: twilio, auth_token: %s}]
numbers: [{number: "+14155550100", provider: twilio, countries: ["*"]}]
limits: {creates_per_key_per_second: 0, creates_per_number_per_hour: 0, unmatched_per_sender_per_hour: 0}
`, addr, addr, filepath.Join(dir, "data"), crashKey, crashToken)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second}
	var mu sync.Mutex
	var all []*acked
	seq := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	for round := range 5 {
		cmd, out := startServer(t, cfgPath, base)
		checkAll(t, client, base, all, out)
		// Load from 8 goroutines until the kill.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					seq++
					from := fmt.Sprintf("+1212%03d%04d", 200+round*10+g, seq%10000)
					mu.Unlock()
					a, ok := createSession(client, base, from)
					if !ok {
						continue
					}
					mu.Lock()
					all = append(all, a)
					mu.Unlock()
					if i%4 == 3 {
						continue // leave some pending
					}
					if sendSMS(client, base, a.from, "code "+a.code, "SM"+a.id) {
						mu.Lock()
						a.verified = true
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(150+rng.IntN(600)) * time.Millisecond)
		_ = cmd.Process.Kill() // SIGKILL: no shutdown, no final snapshot
		_ = cmd.Wait()
		close(stop)
		wg.Wait()
	}
	cmd, out := startServer(t, cfgPath, base)
	checkAll(t, client, base, all, out)
	// Redelivering every verifying message changes nothing.
	for _, a := range all {
		if a.verified {
			if !sendSMS(client, base, a.from, "code "+a.code, "SM"+a.id) {
				t.Fatalf("redelivery for %s refused", a.id)
			}
		}
	}
	checkAll(t, client, base, all, out)
	n := 0
	for _, a := range all {
		if a.verified {
			n++
		}
	}
	if len(all) < 50 || n < 20 {
		t.Fatalf("too little load to mean anything: %d creates, %d verifications", len(all), n)
	}
	t.Logf("%d acknowledged creates, %d acknowledged verifications, 5 kills", len(all), n)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func startServer(t *testing.T, cfgPath, base string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(binary, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, out
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mogate did not start:\n%s", out)
	return nil, nil
}

func createSession(c *http.Client, base, from string) (*acked, bool) {
	req, _ := http.NewRequest("POST", base+"/v1/verifications", strings.NewReader(`{"number":"`+from+`"}`))
	req.Header.Set("Authorization", "Bearer "+crashKey)
	resp, err := c.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var v struct{ ID, Code string }
	if resp.StatusCode != 201 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return nil, false
	}
	return &acked{id: v.ID, code: v.Code, from: from}, true
}

func sendSMS(c *http.Client, base, from, text, sid string) bool {
	form := url.Values{"MessageSid": {sid}, "From": {from}, "To": {"+14155550100"}, "Body": {text}, "AccountSid": {"AC1"}}
	req, _ := http.NewRequest("POST", base+"/webhooks/twilio", bytes.NewReader([]byte(form.Encode())))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilio.Signature(crashToken, base+"/webhooks/twilio", form))
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func checkAll(t *testing.T, c *http.Client, base string, all []*acked, out *lockedBuffer) {
	t.Helper()
	for _, a := range all {
		req, _ := http.NewRequest("GET", base+"/v1/verifications/"+a.id, nil)
		req.Header.Set("Authorization", "Bearer "+crashKey)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Status     string `json:"status"`
			VerifiedAt string `json:"verified_at"`
			MessageID  string `json:"message_id"`
			Code       string `json:"code"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 200 || v.Code != a.code {
			t.Fatalf("acknowledged create %s lost after a crash: %d\n%s", a.id, resp.StatusCode, out)
		}
		if a.verified && v.Status != "verified" {
			t.Fatalf("acknowledged verification of %s lost: status %s", a.id, v.Status)
		}
		if v.Status == "verified" {
			if a.verifiedAt == "" {
				a.verifiedAt, a.messageID = v.VerifiedAt, v.MessageID
			} else if a.verifiedAt != v.VerifiedAt || a.messageID != v.MessageID {
				t.Fatalf("%s verified twice: %s/%s then %s/%s", a.id, a.verifiedAt, a.messageID, v.VerifiedAt, v.MessageID)
			}
		}
	}
}
