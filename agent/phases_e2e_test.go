package agent_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// Scraped in the middle of a first deploy, during its watch, /metrics has
// the new service's state gauges and its counters at zero, so a "not
// converged" alert can fire for it before the pass ends.
func TestE2EMetricsDuringFirstWatch(t *testing.T) {
	promtool := testenv.Command(t, "promtool")
	e := newEnv(t, "@every 1h")
	// A long watch: the switch is seen well before the pass ends.
	m := strings.Replace(e.helloManifest("hello", "v1", ""), "watch: 1s", "watch: 3s", 1)
	e.commit("hello v1", map[string]string{"services/hello.yaml": m})
	e.runAgent()
	e.waitVersion("hello", "v1", 30*time.Second) // switched: the watch runs

	for _, want := range []string{
		`jailkeeper_service_converged{service="hello"} 0`,
		`jailkeeper_deploys_total{result="failed",service="hello"} 0`,
		`jailkeeper_deploys_total{result="success",service="hello"} 0`,
		`jailkeeper_rollbacks_total{service="hello"} 0`,
		`jailkeeper_health_check_failures_total{service="hello"} 0`,
	} {
		if got := e.metricLines(want); !slices.Contains(got, want) {
			t.Errorf("mid-watch /metrics has no %q", want)
		}
	}
	if got := e.metricLines(`jailkeeper_service_info{`); len(got) != 1 || !strings.Contains(got[0], `service="hello"`) {
		t.Errorf("mid-watch jailkeeper_service_info = %q, want the routed hello release", got)
	}
	if got := e.metricLines(`jailkeeper_releases{service="hello"`); len(got) == 0 {
		t.Errorf("mid-watch /metrics has no jailkeeper_releases series for hello")
	}
	if st, ok := e.serviceStatus("hello"); ok && st.Converged {
		t.Fatalf("hello converged already (%+v): the scrape was not during the watch", st)
	}
	b, err := e.agentGet("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(b))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics mid-watch: %v\n%s", err, out)
	}
	e.waitFor("hello converged", 30*time.Second, func() bool {
		return slices.Contains(e.metricLines(`jailkeeper_service_converged{`), `jailkeeper_service_converged{service="hello"} 1`)
	})

	// Once the pass has ended, `jailkeeper status -o json` shows where
	// the deploy's time went.
	e.waitFor("hello converged in /status", 30*time.Second, func() bool {
		st, ok := e.serviceStatus("hello")
		return ok && st.Converged
	})
	var st agent.Status
	if err := json.Unmarshal([]byte(e.jailkeeper("status", "-o", "json", "--config", e.cfgPath)), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 1 || st.Services[0].LastDeploy == nil {
		t.Fatalf("status -o json: %+v, want hello's last_deploy", st.Services)
	}
	ld := st.Services[0].LastDeploy
	var phases []string
	for p := range ld.Phases {
		phases = append(phases, string(p))
	}
	slices.Sort(phases)
	// A first deploy: nothing to drain.
	if want := []string{"create", "fetch", "gate", "start", "switch", "watch"}; !slices.Equal(phases, want) {
		t.Errorf("last_deploy phases = %v, want %v", phases, want)
	}
	if ld.Phases[reconcile.PhaseWatch] < 3 || ld.Total < ld.Phases[reconcile.PhaseWatch] {
		t.Errorf("last_deploy = %+v, want a watch of at least 3 s within the total", ld)
	}
	if got := e.metricLines(`jailkeeper_deploy_phase_seconds_count{phase="watch"}`); !slices.Equal(got, []string{`jailkeeper_deploy_phase_seconds_count{phase="watch"} 1`}) {
		t.Errorf("watch phase count = %q, want 1", got)
	}
}
