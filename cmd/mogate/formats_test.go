package main

import (
	le "encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeNotesFormats: the on-disk format versions that
// docs/upgrading.md states are the ones the binary writes. It runs
// `mogate serve`, creates a verification, stops it with SIGTERM (a final
// snapshot) and reads the versions from the files in data_dir.
func TestUpgradeNotesFormats(t *testing.T) {
	doc, err := os.ReadFile("../../docs/upgrading.md")
	if err != nil {
		t.Fatal(err)
	}
	stated := map[string]int{}
	row := regexp.MustCompile("(?m)^\\| (WAL segment|WAL record|snapshot file|snapshot payload) \\|[^|\n]*\\|[^|\n]*\\| (\\d+) \\|")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		stated[m[1]], _ = strconv.Atoi(m[2])
	}
	if len(stated) != 4 {
		t.Fatalf("docs/upgrading.md: the format table states %v; want the version written of WAL segment, WAL record, snapshot file and snapshot payload", stated)
	}

	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	const key = "formats-key-0000000001"
	data := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "mogate.yaml")
	writeFile(t, cfgPath, signalConfig(addr, "", data, "shutdown_delay: 0s\n", key))
	cmd, out := startServer(t, cfgPath, base)
	if code, body := call(t, "POST", base+"/v1/verifications", key, `{"number":"+14155550123"}`); code != 201 {
		t.Fatalf("create = %d %s", code, body)
	}
	// The segment as it stands before the final snapshot releases it.
	segs, _ := filepath.Glob(filepath.Join(data, "wal", "*.wal"))
	if len(segs) == 0 {
		t.Fatalf("no WAL segment in %s", data)
	}
	seg, err := os.ReadFile(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, 20*time.Second, out)
	snap, err := os.ReadFile(filepath.Join(data, "snapshot"))
	if err != nil {
		t.Fatal(err)
	}

	const frameHeader = 16 // length, crc, lsn
	if len(seg) < 16+frameHeader+1 || string(seg[:8]) != "MOGATWAL" {
		t.Fatalf("WAL segment: %d bytes, magic %q; want MOGATWAL and a record", len(seg), seg[:min(8, len(seg))])
	}
	if len(snap) < 25 || string(snap[:8]) != "MOGATSNP" {
		t.Fatalf("snapshot: %d bytes, magic %q; want MOGATSNP", len(snap), snap[:min(8, len(snap))])
	}
	written := map[string]int{
		"WAL segment":      int(le.LittleEndian.Uint32(seg[8:12])),
		"WAL record":       int(seg[16+frameHeader]),
		"snapshot file":    int(le.LittleEndian.Uint32(snap[8:12])),
		"snapshot payload": int(snap[24]),
	}
	for format, v := range written {
		if stated[format] != v {
			t.Errorf("%s: docs/upgrading.md says version %d, the binary writes %d", format, stated[format], v)
		}
	}
}
