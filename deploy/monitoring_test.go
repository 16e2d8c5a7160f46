package deploy_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"imapcopy.dev/pkg/adminhttp"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskqueue"
)

// The subset of the Prometheus Operator's types that monitoring/ uses, decoded
// strictly: a misspelt field fails as it would in the cluster.
type (
	prometheusRule struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            ruleFile          `json:"spec"`
	}
	// ruleFile is also a plain Prometheus rules file, as promtool reads it.
	ruleFile struct {
		Groups []ruleGroup `json:"groups"`
	}
	ruleGroup struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}
	rule struct {
		Alert       string            `json:"alert,omitempty"`
		Record      string            `json:"record,omitempty"`
		Expr        string            `json:"expr"`
		For         string            `json:"for,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	podMonitor struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Selector            metav1.LabelSelector `json:"selector"`
			PodMetricsEndpoints []struct {
				Port     string `json:"port"`
				Path     string `json:"path"`
				Interval string `json:"interval"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
)

// monitoring is deploy/monitoring, rendered.
type monitoring struct {
	rule      *prometheusRule
	pods      *podMonitor
	dashboard *corev1.ConfigMap
}

func renderMonitoring(t *testing.T) *monitoring {
	t.Helper()
	const dir = "monitoring"
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var mon monitoring
	for _, r := range m.Resources() {
		gvk := r.GetGvk()
		id := dir + " " + gvk.Kind + "/" + r.GetName()
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: marshal: %v", id, err)
		}
		var obj any
		switch {
		case gvk.Group == "monitoring.coreos.com" && gvk.Version == "v1" && gvk.Kind == "PrometheusRule" && mon.rule == nil:
			mon.rule = &prometheusRule{}
			obj = mon.rule
		case gvk.Group == "monitoring.coreos.com" && gvk.Version == "v1" && gvk.Kind == "PodMonitor" && mon.pods == nil:
			mon.pods = &podMonitor{}
			obj = mon.pods
		case gvk.Group == "" && gvk.Version == "v1" && gvk.Kind == "ConfigMap" && mon.dashboard == nil:
			mon.dashboard = &corev1.ConfigMap{}
			obj = mon.dashboard
		default:
			t.Fatalf("%s: not an object monitoring_test.go expects (one PrometheusRule, one PodMonitor, one ConfigMap)", id)
		}
		strict, err := kjson.UnmarshalStrict(data, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil {
			t.Fatalf("%s: decode: %v", id, err)
		}
		for _, e := range strict {
			t.Errorf("%s: %v", id, e)
		}
	}
	if mon.rule == nil || mon.pods == nil || mon.dashboard == nil {
		t.Fatalf("%s renders %d objects: want a PrometheusRule, a PodMonitor and the dashboard's ConfigMap", dir, len(m.Resources()))
	}
	return &mon
}

// promtool runs Prometheus's promtool (Debian package prometheus) in dir.
func promtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): install Debian's prometheus package (`make test-deps` as root does)", err)
	}
	cmd := exec.CommandContext(t.Context(), path, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %s: %v", path, err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAlertRules checks the PrometheusRule's rules with promtool and runs the unit
// tests of monitoring/alerts_test.yaml on them.
func TestAlertRules(t *testing.T) {
	mon := renderMonitoring(t)
	if l := mon.rule.Metadata.Labels; l["prometheus"] != "k8s" || l["role"] != "alert-rules" {
		t.Errorf("PrometheusRule labels %v: want prometheus=k8s and role=alert-rules, which kube-prometheus selects", l)
	}
	tested, err := os.ReadFile("monitoring/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range mon.rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %q of group %s: want an alert with a severity label, a summary and a description", r.Alert, g.Name)
			}
			if !strings.Contains(string(tested), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no unit test in monitoring/alerts_test.yaml", r.Alert)
			}
		}
	}
	t.Logf("alerts: %s", strings.Join(alerts, ", "))
	checkMetricNames(t, "monitoring/prometheusrule.yaml", string(must(os.ReadFile("monitoring/prometheusrule.yaml"))))

	dir := t.TempDir()
	writeYAML(t, filepath.Join(dir, "alerts.rules.yaml"), mon.rule.Spec)
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tested, 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "rules", "alerts.rules.yaml")
	promtool(t, dir, "test", "rules", "alerts_test.yaml")
}

// grafanaVars are the dashboard's variables, replaced by values that make each
// expression plain PromQL for promtool.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$namespace", ".*")

// TestDashboard checks that the dashboard's ConfigMap holds monitoring/grafana-dashboard.json,
// that every panel's expression parses (promtool, as recording rules) and names
// metrics that the services export.
func TestDashboard(t *testing.T) {
	mon := renderMonitoring(t)
	text := string(must(os.ReadFile("monitoring/grafana-dashboard.json")))
	if got := mon.dashboard.Data["imapcopy-fleet.json"]; got != text {
		t.Errorf("ConfigMap %s does not hold grafana-dashboard.json as imapcopy-fleet.json", mon.dashboard.Name)
	}
	if mon.dashboard.Labels["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap %s labels %v: want grafana_dashboard=1 (Grafana's sidecar)", mon.dashboard.Name, mon.dashboard.Labels)
	}
	type panel struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var dash struct {
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if dash.UID == "" {
		t.Error("grafana-dashboard.json has no uid: Grafana would make a new dashboard at each load")
	}
	ids := map[int]string{}
	var rules []rule
	for _, p := range dash.Panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share the id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			expr := grafanaVars.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: %q uses a variable this test does not know", p.Title, tg.Expr)
			}
			rules = append(rules, rule{Record: "dashboard:panel", Expr: expr})
		}
	}
	checkMetricNames(t, "monitoring/grafana-dashboard.json", text)

	dir := t.TempDir()
	writeYAML(t, filepath.Join(dir, "dashboard.rules.yaml"), ruleFile{Groups: []ruleGroup{{Name: "dashboard", Rules: rules}}})
	promtool(t, dir, "check", "rules", "dashboard.rules.yaml")
}

// TestPodMonitorSelectsServices checks that the PodMonitor scrapes the api and the
// copiers of overlays/prod on a port their containers declare.
func TestPodMonitorSelectsServices(t *testing.T) {
	mon := renderMonitoring(t)
	f := render(t, "overlays/prod")
	ws, err := f.selected(&mon.pods.Spec.Selector)
	if err != nil {
		t.Fatalf("PodMonitor selector: %v", err)
	}
	var names []string
	for _, w := range ws {
		names = append(names, w.name)
		for _, ep := range mon.pods.Spec.PodMetricsEndpoints {
			found := false
			for _, c := range w.template.Spec.Containers {
				for _, p := range c.Ports {
					found = found || p.Name == ep.Port
				}
			}
			if !found {
				t.Errorf("PodMonitor scrapes port %q, which %s does not declare", ep.Port, w)
			}
		}
	}
	if want := []string{"imapcopy-api", "imapcopy-copier"}; !slices.Equal(names, want) {
		t.Errorf("PodMonitor selects %v, want %v", names, want)
	}
}

// metricName finds what looks like one of our metrics (or a Go, process or KEDA
// metric) in a text: expressions, and the descriptions that name them.
var metricName = regexp.MustCompile(`\b(?:imapcopy|go|process|keda)_[a-zA-Z0-9_:]*`)

// external are the metrics the rules and the dashboard may use that no imapcopy
// service exports.
var external = map[string]string{
	"keda_scaler_errors_total": "KEDA's operator",
}

// checkMetricNames fails for every metric name in text that the services do not
// export.
func checkMetricNames(t *testing.T, file, text string) {
	t.Helper()
	exported := exportedMetrics(t)
	seen := map[string]bool{}
	for _, name := range metricName.FindAllString(text, -1) {
		if seen[name] {
			continue
		}
		seen[name] = true
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && exported[b] {
				base = b
			}
		}
		if !exported[base] && external[name] == "" {
			t.Errorf("%s names %s, which no service exports (exported: %s)", file, name, strings.Join(slices.Sorted(maps.Keys(exported)), ", "))
		}
	}
}

// exportedMetrics returns the names of the metrics the services register, made as
// services/api, services/copier and services/standalone make them.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	// The Go and process collectors and the admin server's own metrics, gathered.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	adminhttp.New("127.0.0.1:0", reg, map[string]func(context.Context) error{"nats": nil}, nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	// The packages' metrics, described (a vector without children is not gathered).
	d := describer{names: names}
	syncapi.NewMetrics(d)
	syncworker.NewMetrics(d)
	d.MustRegister(taskqueue.NewCollector(nil))
	return names
}

// describer is a prometheus.Registerer that records the names its collectors describe.
type describer struct{ names map[string]bool }

var fqName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

func (d describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		m := fqName.FindStringSubmatch(desc.String())
		if m == nil {
			panic("cannot read the name of " + desc.String())
		}
		d.names[m[1]] = true
	}
	return nil
}

func (d describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d describer) Unregister(prometheus.Collector) bool { return false }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
