package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mogate/mogate/gateway/client"
)

// rotationConfig is a configuration whose API key entries are name:key
// pairs, each with the same webhook_url and webhookSecret.
func rotationConfig(addr, dataDir, hook, webhookSecret string, entries ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\npublic_url: http://%s\ndata_dir: %s\n", addr, addr, dataDir)
	b.WriteString("events: {allow_private_destinations: true}\napi_keys:\n")
	for _, e := range entries {
		name, key, _ := strings.Cut(e, ":")
		fmt.Fprintf(&b, "  - {name: %s, key: %s, webhook_url: %q, webhook_secret: %s}\n", name, key, hook, webhookSecret)
	}
	fmt.Fprintf(&b, "providers: [{name: twilio, type: twilio, auth_token: %s}]\n", crashToken)
	b.WriteString(`numbers: [{number: "+14155550100", provider: twilio, countries: ["*"]}]` + "\n")
	b.WriteString("limits: {creates_per_number_per_hour: 0}\n")
	return b.String()
}

// TestCredentialRotation follows SECURITY.md's rotation procedures on the
// real binary. A: the same key name with a new key and a new webhook
// secret by SIGHUP: the old key gets 401, the new one reads the
// verifications created with the old (they belong to the name), and events
// are signed with the new secret only, which the old one does not verify
// (so an app accepts both while replicas reload). B: a second entry of
// another name with the same webhook: its key does not see the first
// name's verifications.
func TestCredentialRotation(t *testing.T) {
	events := make(chan *http.Request, 8)
	bodies := make(chan []byte, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		events <- r
		bodies <- b
	}))
	defer hook.Close()
	const (
		oldKey, newKey, otherKey = "shop-old-key-00000001", "shop-new-key-00000002", "shop-other-key-000003"
		oldSecret, newSecret     = "whsec_b2xkLXNlY3JldC12YWx1ZS0x", "whsec_bmV3LXNlY3JldC12YWx1ZS0y"
	)
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	cfgPath, data := filepath.Join(dir, "mogate.yaml"), filepath.Join(dir, "data")
	writeFile(t, cfgPath, rotationConfig(addr, data, hook.URL, oldSecret, "shop:"+oldKey))
	cmd, out := startServer(t, cfgPath, base)

	create := func(key, from string) (id, code string) {
		t.Helper()
		status, body := call(t, "POST", base+"/v1/verifications", key, `{"number":"`+from+`"}`)
		var v struct{ ID, Code string }
		if status != 201 || json.Unmarshal([]byte(body), &v) != nil {
			t.Fatalf("create with %s = %d %s", key, status, body)
		}
		return v.ID, v.Code
	}
	// verify verifies a session by SMS and returns its event as the app gets it.
	verify := func(from, code, sid string) (http.Header, []byte) {
		t.Helper()
		if !sendSMS(http.DefaultClient, base, from, code, sid) {
			t.Fatal("the verifying webhook was refused")
		}
		select {
		case r := <-events:
			return r.Header, <-bodies
		case <-time.After(10 * time.Second):
			t.Fatalf("no event reached the app\n%s", out)
			return nil, nil
		}
	}
	hup := func() {
		t.Helper()
		before := strings.Count(out.String(), "configuration reloaded")
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); strings.Count(out.String(), "configuration reloaded") == before; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("SIGHUP not applied\n%s", out)
			}
		}
	}

	first, _ := create(oldKey, "+14155550123")
	id, code := create(oldKey, "+14155550124")
	h, body := verify("+14155550124", code, "SMrot1")
	if _, err := client.VerifyEvent(oldSecret, h, body); err != nil {
		t.Fatalf("an event before the rotation does not verify with the old secret: %v", err)
	}

	// A: same name, new key and webhook secret.
	writeFile(t, cfgPath, rotationConfig(addr, data, hook.URL, newSecret, "shop:"+newKey))
	hup()
	if status, _ := call(t, "GET", base+"/v1/verifications/"+first, oldKey, ""); status != 401 {
		t.Errorf("the old key after the reload = %d, want 401", status)
	}
	if status, body := call(t, "GET", base+"/v1/verifications/"+first, newKey, ""); status != 200 {
		t.Errorf("the new key of the same name reading a verification created with the old = %d %s, want 200", status, body)
	}
	id2, code2 := create(newKey, "+14155550125")
	h, body = verify("+14155550125", code2, "SMrot2")
	if _, err := client.VerifyEvent(newSecret, h, body); err != nil {
		t.Errorf("an event after the rotation does not verify with the new secret: %v", err)
	}
	if _, err := client.VerifyEvent(oldSecret, h, body); err == nil {
		t.Error("an event after the rotation verifies with the old secret: mogate signed with both")
	}
	if n := len(strings.Fields(h.Get("webhook-signature"))); n != 1 {
		t.Errorf("webhook-signature carries %d signatures, want 1", n)
	}

	// B: a second entry of another name.
	writeFile(t, cfgPath, rotationConfig(addr, data, hook.URL, newSecret, "shop:"+newKey, "shop2:"+otherKey))
	hup()
	for _, v := range []string{id, id2} {
		if status, _ := call(t, "GET", base+"/v1/verifications/"+v, otherKey, ""); status != 404 {
			t.Errorf("another name's key reading the first name's verification = %d, want 404", status)
		}
		if status, _ := call(t, "GET", base+"/v1/verifications/"+v, newKey, ""); status != 200 {
			t.Errorf("the first name's key after adding an entry = %d, want 200", status)
		}
	}
	_, code3 := create(otherKey, "+14155550126")
	h, body = verify("+14155550126", code3, "SMrot3")
	if _, err := client.VerifyEvent(newSecret, h, body); err != nil {
		t.Errorf("the second entry's event does not verify with the shared secret: %v", err)
	}
}
