package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
