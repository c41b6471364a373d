package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// promServer is a real Prometheus (Debian package prometheus) on loopback.
type promServer struct {
	t    *testing.T
	addr string
	log  string
}

// startPrometheus runs Prometheus with its own config and TSDB in
// t.TempDir, scraping target every second and loading ruleFiles, until the
// test ends.
func startPrometheus(t *testing.T, target string, ruleFiles ...string) *promServer {
	t.Helper()
	bin := testenv.Command(t, "prometheus")
	dir := t.TempDir()
	p := &promServer{t: t, addr: caddytest.FreeAddr(t), log: filepath.Join(dir, "prometheus.log")}
	var rules strings.Builder
	if len(ruleFiles) > 0 {
		rules.WriteString("rule_files:\n")
		for _, f := range ruleFiles {
			fmt.Fprintf(&rules, "  - %q\n", f)
		}
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
%sscrape_configs:
  - job_name: jailkeeper
    static_configs:
      - targets: [%q]
`, rules.String(), target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr,
		"--log.level=warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("prometheus log:\n%s", tail(string(b), 40))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("prometheus exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix time, "value"]
}

// query runs an instant PromQL query through the HTTP API.
func (p *promServer) query(q string) ([]promSample, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %s: %w: %s", q, err, body)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: %s %s: %s", q, r.Status, r.Data.ResultType, r.Error)
	}
	return r.Data.Result, nil
}

// value is the single sample's value of q, or "" when q returns no sample.
func (p *promServer) value(q string) string {
	p.t.Helper()
	res, err := p.query(q)
	if err != nil {
		p.t.Fatal(err)
	}
	switch len(res) {
	case 0:
		return ""
	case 1:
		v, _ := res[0].Value[1].(string)
		return v
	}
	p.t.Fatalf("query %s: %d samples, want at most one: %v", q, len(res), res)
	return ""
}

// A real Prometheus scrapes the agent and sees the deploy through PromQL;
// the example alerting rules of docs/alerts.yml load and evaluate in it.
func TestPrometheusScrapesDeploys(t *testing.T) {
	testenv.Command(t, "prometheus")
	e := newEnv(t, "@every 1s")
	e.commit("add hello", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v1", "")})
	e.runAgent()
	alerts := filepath.Join(testenv.RepoRoot(t), "docs", "alerts.yml")
	p := startPrometheus(t, e.listen, alerts)
	e.waitVersion("hello", "v1", 60*time.Second)

	e.waitFor(`jailkeeper_deploys_total{result="success"} = 1 in Prometheus`, 60*time.Second, func() bool {
		return p.value(`jailkeeper_deploys_total{result="success",service="hello"}`) == "1"
	})
	e.waitFor(`jailkeeper_service_converged{service="hello"} = 1 in Prometheus`, 30*time.Second, func() bool {
		return p.value(`jailkeeper_service_converged{service="hello"}`) == "1"
	})
	checks := []struct{ query, want string }{
		{`up{job="jailkeeper"}`, "1"},
		{`count(jailkeeper_service_info{service="hello",release=~"hello_[0-9a-f]{12}_[0-9a-f]{6}"})`, "1"},
		{`jailkeeper_releases{service="hello",state="live"}`, "1"},
		{`jailkeeper_deploys_total{result="failed",service="hello"}`, "0"},
		{`count(jailkeeper_source_revision_info)`, "1"},
		{`time() - jailkeeper_source_last_success_timestamp_seconds < bool 600`, "1"},
	}
	for _, c := range checks {
		if got := p.value(c.query); got != c.want {
			t.Errorf("%s = %q, want %q", c.query, got, c.want)
		}
	}

	// Every query of the Grafana dashboard is PromQL that this Prometheus
	// accepts, with the dashboard's variables filled in.
	exprs := grafanaExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("dashboard queries: %d, want them all", len(exprs))
	}
	vars := strings.NewReplacer("$instance", ".+", "$service", ".+", "$job", ".+", "$__rate_interval", "1m")
	for _, q := range exprs {
		if _, err := p.query(vars.Replace(q)); err != nil {
			t.Errorf("dashboard query: %v", err)
		}
	}
	if v := p.value(vars.Replace(`count(jailkeeper_service_info{instance=~"$instance",service=~"$service"})`)); v != "1" {
		t.Errorf("live releases on the dashboard = %q, want 1", v)
	}

	// The rules loaded and evaluate without error; none fires on a
	// converged host.
	e.waitFor("alerting rules evaluated", 30*time.Second, func() bool {
		groups := p.rules()
		if len(groups) == 0 {
			return false
		}
		for _, g := range groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					if r.LastError != "" {
						t.Fatalf("rule %s: %s", r.Name, r.LastError)
					}
					return false
				}
			}
		}
		return true
	})
	for _, g := range p.rules() {
		for _, r := range g.Rules {
			if r.State != "inactive" {
				t.Errorf("alert %s is %s on a converged host", r.Name, r.State)
			}
		}
	}
}

type promRuleGroup struct {
	Name  string `json:"name"`
	Rules []struct {
		Name      string `json:"name"`
		Health    string `json:"health"`
		State     string `json:"state"`
		LastError string `json:"lastError"`
	} `json:"rules"`
}

// rules lists the loaded rule groups from /api/v1/rules.
func (p *promServer) rules() []promRuleGroup {
	p.t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/rules")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []promRuleGroup `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		p.t.Fatal(err)
	}
	return r.Data.Groups
}

// grafanaExprs returns the PromQL of every panel target and annotation of
// docs/grafana-dashboard.json.
func grafanaExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, a := range dash.Annotations.List {
		out = append(out, a.Expr)
	}
	return out
}
