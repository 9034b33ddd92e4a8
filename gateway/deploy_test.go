package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
	"gopkg.in/yaml.v3"
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
	h.observeFinals()
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
			if !have[m] && !redisOnly[m] {
				t.Errorf("%s uses %s, which a scrape does not have", file, m)
			}
		}
	}
}

// redisOnly are metrics that only a store: redis scrape has; the Redis
// tests check them (TestGatewayOnRedisClock).
var redisOnly = map[string]bool{"mogate_clock_skew_seconds": true}

// deploymentWide are the gauges that every replica reports for the whole
// deployment (store: redis reads them from the shared store): summed over
// instances they count N times.
var deploymentWide = []string{"mogate_pending_verifications"}

// deployExprs returns every PromQL expression of the alert rules and the
// dashboard, each with where it comes from.
func deployExprs(t *testing.T) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	b, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if b, err = os.ReadFile(dashboard); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			exprs[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
		}
	}
	return exprs
}

// TestDeploymentWideGaugesNotSummed: the rules and the dashboard aggregate
// a deployment-wide gauge with max (or min), never sum, so several
// replicas do not multiply it.
func TestDeploymentWideGaugesNotSummed(t *testing.T) {
	for _, g := range deploymentWide {
		agg := regexp.MustCompile(`(\w*)\s*(?:by\s*\([^)]*\)\s*)?\(\s*` + g + `\b`)
		used := false
		for where, expr := range deployExprs(t) {
			if !strings.Contains(expr, g) {
				continue
			}
			used = true
			ms := agg.FindAllStringSubmatch(expr, -1)
			if len(ms) != strings.Count(expr, g) {
				t.Errorf("%s: %s is not inside an aggregation: %s", where, g, expr)
			}
			for _, m := range ms {
				if m[1] != "max" && m[1] != "min" {
					t.Errorf("%s: %s aggregated with %q, want max: %s", where, g, m[1], expr)
				}
			}
		}
		if !used {
			t.Errorf("the dashboard does not show %s", g)
		}
	}
}

// TestDashboardDataSource: the dashboard picks its Prometheus one way, a
// template variable "datasource" that every panel, query and variable
// uses; no import-time __inputs or ${DS_...} beside it.
func TestDashboardDataSource(t *testing.T) {
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	type ds struct{ Type, UID string }
	var dash struct {
		Inputs     []any `json:"__inputs"`
		Templating struct {
			List []struct {
				Name, Type string
				Query      any
				Datasource *ds
			}
		}
		Panels []struct {
			Title      string
			Datasource *ds
			Targets    []struct{ Datasource *ds }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.Inputs != nil || strings.Contains(string(b), "${DS_") {
		t.Error("the dashboard declares __inputs / ${DS_...} beside its datasource variable")
	}
	want := ds{"prometheus", "${datasource}"}
	uses := func(where string, d *ds) {
		if d == nil || *d != want {
			t.Errorf("%s: datasource %+v, want %+v", where, d, want)
		}
	}
	vars := 0
	for _, v := range dash.Templating.List {
		switch {
		case v.Type == "datasource":
			vars++
			if v.Name != "datasource" || v.Query != "prometheus" {
				t.Errorf("datasource variable %q of %v, want datasource of prometheus", v.Name, v.Query)
			}
		case v.Type == "query":
			uses("variable "+v.Name, v.Datasource)
		}
	}
	if vars != 1 {
		t.Errorf("%d datasource variables, want 1", vars)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			continue // a row
		}
		uses("panel "+p.Title, p.Datasource)
		for i, tg := range p.Targets {
			uses(fmt.Sprintf("panel %s target %d", p.Title, i), tg.Datasource)
		}
	}
}
