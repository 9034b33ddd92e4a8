package gateway

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGeneratedClient generates a Go client from /openapi.json with
// oapi-codegen (the version pinned in testdata/genclient/go.mod), compiles
// it as generated, and drives a live server through it: create, an
// idempotent replay, get, list, QR, cancel, capture mode, the error bodies
// (401, 404, 409, 422) and the Contiguity routes. The document is used as
// served, the code as generated: neither is edited.
func TestGeneratedClient(t *testing.T) {
	goBin, err := exec.LookPath("go") // go test puts its GOROOT/bin first on PATH
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join("testdata", "genclient", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, testYAML)
	srv := httptest.NewServer(h.h)
	defer srv.Close()
	doc := h.do("GET", "/openapi.json", "", nil, nil)
	if doc.Code != 200 {
		t.Fatalf("GET /openapi.json = %d", doc.Code)
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), doc.Body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	run := func(env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append([]string{"GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false"}, env...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(nil, goBin, "tool", "oapi-codegen", "-generate", "types,client", "-package", "main", "-o", "client.gen.go", "openapi.json")
	run(nil, goBin, "vet", ".")
	run(nil, goBin, "build", "-o", "genclient", ".")
	out := run([]string{"MOGATE_URL=" + srv.URL, "MOGATE_KEY=" + shopKey}, filepath.Join(dir, "genclient"))
	if strings.TrimSpace(out) != "ok" {
		t.Fatalf("the generated client: %s", out)
	}
}
