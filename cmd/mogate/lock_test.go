package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lockConfig is a configuration on dataDir that the crash test's helpers
// (createSession, checkAll) can talk to.
func lockConfig(t *testing.T, addr, dataDir string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mogate.yaml")
	y := fmt.Sprintf(`listen: %s
data_dir: %s
api_keys: [{name: crash, key: %s}]
providers: [{name: twilio, type: twilio, auth_token: %s}]
numbers: [{number: "+14155550100", provider: twilio, countries: ["*"]}]
limits: {creates_per_key_per_second: 0, creates_per_number_per_hour: 0}
`, addr, dataDir, crashKey, crashToken)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tree lists every file and directory under dir with its mode, size,
// modification time and, for files, a hash of the contents.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "%s %v %d %d", rel, info.Mode(), info.Size(), info.ModTime().UnixNano())
		if !d.IsDir() {
			content, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(content))
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSecondServeRefused: a second `mogate serve` on a data_dir that a
// running one owns exits non-zero with an error naming the directory and
// the owner's pid, whether it could bind its port or not and in dev mode
// too, having created, changed and deleted nothing there; the owner keeps
// serving, and what it acknowledged survives its restart.
func TestSecondServeRefused(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	base := "http://" + addr
	cfgA := lockConfig(t, addr, dataDir)
	a, outA := startServer(t, cfgA, base)
	client := &http.Client{Timeout: 5 * time.Second}
	first, ok := createSession(client, base, "+12125550100")
	if !ok {
		t.Fatalf("create on A failed:\n%s", outA)
	}
	acked := []*acked{first}

	free := freeAddr(t)
	seconds := []struct {
		name string
		args []string
	}{
		{"free port", []string{"serve", "--config", lockConfig(t, free, dataDir)}},
		{"A's port", []string{"serve", "--config", cfgA}},
		{"dev mode", []string{"serve", "--data-dir", dataDir, "--listen", free}},
	}
	for _, b := range seconds {
		t.Run(b.name, func(t *testing.T) {
			before := tree(t, dataDir)
			time.Sleep(20 * time.Millisecond) // so that a write would show in an mtime
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, binary, b.args...).CombinedOutput()
			var exit *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("second serve: %v (want exit status 1)\n%s", err, out)
			}
			want := fmt.Sprintf("%s is locked by process %d", dataDir, a.Process.Pid)
			if !strings.Contains(string(out), want) {
				t.Fatalf("second serve said %q, want it to contain %q", out, want)
			}
			if after := tree(t, dataDir); after != before {
				t.Fatalf("the refused serve changed %s:\nbefore:\n%safter:\n%s", dataDir, before, after)
			}
		})
	}

	// A still serves, and still writes.
	checkAll(t, client, base, acked, outA)
	second, ok := createSession(client, base, "+12125550101")
	if !ok {
		t.Fatalf("create on A after the refused starts failed:\n%s", outA)
	}
	acked = append(acked, second)
	// Killed, A leaves its lock file but not its lock: it starts again, with
	// everything it acknowledged.
	_ = a.Process.Kill()
	_ = a.Wait()
	_, outA = startServer(t, cfgA, base)
	checkAll(t, client, base, acked, outA)
}

// TestServeConfigIsTheOneSource: --listen and --data-dir are dev mode flags;
// with --config they are an error, not silently ignored, and nothing starts.
func TestServeConfigIsTheOneSource(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0") // the file's listen address: taken
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := lockConfig(t, busy.Addr().String(), dataDir)
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--listen", "not-an-address"}, []string{"--listen cannot be used with --config", "set listen there"}},
		{[]string{"--data-dir", t.TempDir()}, []string{"--data-dir cannot be used with --config", "set data_dir there"}},
		{[]string{"--listen", "not-an-address", "--data-dir", t.TempDir()}, []string{"--listen cannot", "--data-dir cannot"}},
	}
	for _, tc := range cases {
		var sout, serr bytes.Buffer
		code := run(append([]string{"serve", "--config", cfg}, tc.args...), &sout, &serr)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (a usage error)", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(serr.String(), w) {
				t.Errorf("%v: %q does not contain %q", tc.args, serr.String(), w)
			}
		}
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data_dir was created: %v", err)
	}
}
