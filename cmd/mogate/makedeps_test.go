package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeTools writes shell scripts standing in for apt-get, systemctl and
// sudo into a directory for PATH: each appends its arguments to log, and
// apt-get install also records what the policy-rc.d at policy answers (a
// service start refused is exit 101). aptExit is apt-get install's status.
func fakeTools(t *testing.T, log, policy string, aptExit int) string {
	t.Helper()
	dir := t.TempDir()
	scripts := map[string]string{
		"apt-get": `echo "apt-get $*" >> ` + log + `
case "$1" in install)
  if [ -x ` + policy + ` ]; then ` + policy + ` prometheus start; echo "policy-rc.d answers $?" >> ` + log + `;
  else echo "no policy-rc.d" >> ` + log + `; fi
  exit ` + strconv.Itoa(aptExit) + `;;
esac`,
		"systemctl": `echo "systemctl $*" >> ` + log,
		"sudo":      `exec "$@"`,
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestMakeDepsStartsNoService: `make deps` installs what is missing
// without recommends (prometheus-node-exporter), with a policy-rc.d that
// refuses every service start while apt runs, removes that policy-rc.d
// afterwards (whether the install worked or not) but keeps one the system
// already had, and on a systemd host disables the units it installed, so
// `make test` leaves no Prometheus on :9090 behind. apt-get, systemctl and
// sudo are fakes on PATH: nothing is installed.
func TestMakeDepsStartsNoService(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make not installed")
	}
	for _, tc := range []struct {
		name      string
		havePol   bool // the system has a policy-rc.d of its own
		systemd   bool
		aptExit   int
		wantFail  bool
		wantInLog []string
		notInLog  []string
	}{
		{name: "container", aptExit: 0,
			wantInLog: []string{"apt-get update", "install -y -qq --no-install-recommends prometheus", "policy-rc.d answers 101"},
			notInLog:  []string{"systemctl", "no policy-rc.d"}},
		{name: "systemd host", systemd: true, aptExit: 0,
			wantInLog: []string{"policy-rc.d answers 101", "systemctl disable --now prometheus.service"}},
		{name: "own policy kept", havePol: true, aptExit: 0,
			wantInLog: []string{"policy-rc.d answers 101"}},
		{name: "install fails", aptExit: 1, wantFail: true,
			wantInLog: []string{"policy-rc.d answers 101"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			log, policy, systemd := filepath.Join(tmp, "log"), filepath.Join(tmp, "policy-rc.d"), filepath.Join(tmp, "systemd")
			own := "#!/bin/sh\n# the system's own\nexit 101\n"
			if tc.havePol {
				if err := os.WriteFile(policy, []byte(own), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.systemd {
				if err := os.Mkdir(systemd, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			bin := fakeTools(t, log, policy, tc.aptExit)
			cmd := exec.Command(mk, "-s", "-C", "../..", "deps",
				"DEB_DEPS=mogate-test-no-such-command:prometheus", "POLICY_RC="+policy, "SYSTEMD_RUN="+systemd)
			cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if (err != nil) != tc.wantFail {
				t.Fatalf("make deps: err %v, want failure %v\n%s", err, tc.wantFail, out)
			}
			b, _ := os.ReadFile(log)
			for _, want := range tc.wantInLog {
				if !strings.Contains(string(b), want) {
					t.Errorf("make deps did not %q:\n%s", want, b)
				}
			}
			for _, not := range tc.notInLog {
				if strings.Contains(string(b), not) {
					t.Errorf("make deps did %q:\n%s", not, b)
				}
			}
			got, err := os.ReadFile(policy)
			switch {
			case tc.havePol && string(got) != own:
				t.Errorf("the system's policy-rc.d was changed or removed: %q, %v", got, err)
			case !tc.havePol && err == nil:
				t.Errorf("make deps left its policy-rc.d behind")
			}
		})
	}
}
