package gateway

import (
	"bufio"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
)

// The operator's files in deploy/ that name metrics.
const (
	alertRules = "../deploy/mogate-alerts.yml"
	alertTests = "../deploy/mogate-alerts.test.yml"
	dashboard  = "../deploy/mogate-dashboard.json"
)

// needTool returns the path of a tool the test runs: where CI is set a
// missing tool fails the test (make deps installs it), elsewhere it skips.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (Debian package %s; make deps installs it)", name, pkg)
		}
		t.Skipf("%s not installed (Debian package %s)", name, pkg)
	}
	return path
}

// TestAlertRulesPromtool: promtool accepts the alert rules, and their unit
// tests (an unverifying number, a backlog, a storage failure) pass.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	for _, args := range [][]string{{"check", "rules", alertRules}, {"test", "rules", alertTests}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestDeployMetricsExist: every metric the alert rules and the dashboard
// use is in a real scrape of a gateway with a data_dir that created,
// verified, cancelled and rate-limited sessions and took webhooks.
func TestDeployMetricsExist(t *testing.T) {
	cfg, err := config.Parse([]byte(strings.Replace(testYAML, "creates_per_number_per_hour: 1000", "creates_per_number_per_hour: 2", 1)+
		"data_dir: "+t.TempDir()+"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, logs: &syncBuffer{}, now: time.Now()}
	s, err := New(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(h.logs, nil)), Now: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	h.s, h.h = s, s.Handler()
	s.SetReady(true)

	v := h.mustCreate(`{"number": "+14155550123"}`)
	h.send(h.signed("twilio", adapters.Inbound{MessageID: "SM1", From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
	c := h.mustCreate(`{"number": "+14155550124"}`)
	h.do("POST", "/v1/verifications/"+c["id"].(string)+"/cancel", shopKey, nil, nil)
	h.mustCreate(`{"number": "+14155550124"}`)
	h.create(shopKey, `{"number": "+14155550124"}`, nil) // 429
	scrape := h.do("GET", "/metrics", "", nil, nil).Body.String()

	have := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(scrape))
	for sc.Scan() {
		if line := sc.Text(); line != "" && line[0] != '#' {
			have[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
		}
	}
	name := regexp.MustCompile(`\bmogate_[a-z0-9_]+`)
	for _, file := range []string{alertRules, dashboard} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		used := name.FindAllString(string(b), -1)
		if len(used) == 0 {
			t.Fatalf("%s uses no metric", file)
		}
		for _, m := range used {
			if !have[m] {
				t.Errorf("%s uses %s, which a scrape does not have", file, m)
			}
		}
	}
}
