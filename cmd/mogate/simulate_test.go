package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

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
