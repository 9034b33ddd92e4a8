package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/config"
)

const unitFile = "../../deploy/mogate.service"

// TestSystemdUnit: systemd-analyze verify accepts deploy/mogate.service
// (pointed at the binary under test) where systemd-analyze is installed,
// and its stop timeout leaves room for shutdown_delay and the drain.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("the unit sets no TimeoutStopSec")
	}
	stop, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if need := config.Default().ShutdownDelay + drainFor; stop <= need {
		t.Fatalf("TimeoutStopSec=%s must exceed shutdown_delay + drain = %s", stop, need)
	}
	for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"PrivateTmp=yes", "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service", "ReadWritePaths=/var/lib/mogate", "DynamicUser=yes"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	path := filepath.Join(t.TempDir(), "mogate.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/mogate", binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "mogate.service:") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdInstallModes: the install instructions of the unit's comment
// and deploy/README.md agree, and the configuration file they install is
// readable by the unit's DynamicUser (neither its owner nor its group):
// the secrets stay in the 0600 environment file, which systemd itself
// reads as root.
func TestSystemdInstallModes(t *testing.T) {
	modes := map[string]map[string]string{} // file installed -> doc -> mode
	install := regexp.MustCompile(`install -m (0[0-7]{3}) \S+ (/etc/mogate/mogate\.(?:yaml|env))`)
	for _, doc := range []string{unitFile, "../../deploy/README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range install.FindAllStringSubmatch(string(b), -1) {
			if modes[m[2]] == nil {
				modes[m[2]] = map[string]string{}
			}
			if prev, ok := modes[m[2]][doc]; ok && prev != m[1] {
				t.Errorf("%s installs %s with modes %s and %s", doc, m[2], prev, m[1])
			}
			modes[m[2]][doc] = m[1]
		}
	}
	for file, want := range map[string]func(mode int64) bool{
		"/etc/mogate/mogate.yaml": func(m int64) bool { return m&0o004 != 0 && m&0o002 == 0 },
		"/etc/mogate/mogate.env":  func(m int64) bool { return m&0o077 == 0 },
	} {
		if len(modes[file]) != 2 {
			t.Errorf("%s: install instructions in %d of the 2 documents: %v", file, len(modes[file]), modes[file])
		}
		for doc, mode := range modes[file] {
			m, _ := strconv.ParseInt(mode, 8, 32)
			if !want(m) {
				t.Errorf("%s installs %s with mode %s: the config must be readable by the dynamic user, the secrets only by root", doc, file, mode)
			}
		}
	}
}
