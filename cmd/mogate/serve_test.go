package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServePortInUse: a listen address that another process holds is a
// clear error naming the address and how to choose another, exit 1, in
// dev mode and with a configuration file (listen and admin_listen).
func TestServePortInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().String()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mogate.yaml")
	adminPath := filepath.Join(dir, "admin.yaml")
	writeFile(t, cfgPath, signalConfig(busy, "", filepath.Join(dir, "data"), "", "port-key-000000000001"))
	free := freeAddr(t)
	writeFile(t, adminPath, signalConfig(free, busy, filepath.Join(dir, "data2"), "", "port-key-000000000001"))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"dev mode", []string{"serve", "--data-dir", filepath.Join(dir, "dev"), "--listen", busy}, busy + " is in use: is another mogate running? Choose another address with --listen"},
		{"config listen", []string{"serve", "--config", cfgPath}, busy + " is in use: is another mogate running? Choose another address with listen: in " + cfgPath},
		{"config admin_listen", []string{"serve", "--config", adminPath}, busy + " is in use: is another mogate running? Choose another address with admin_listen: in " + adminPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("stderr lacks %q:\n%s", tc.want, errb.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "dev", devAddressFile)); !os.IsNotExist(err) {
		t.Fatalf("a failed start left %s: %v", devAddressFile, err)
	}
}
