package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/hothost/hothost/client"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

const dashboardFile = "grafana/hothost.json"

// targetLabels are the labels Prometheus adds to every scraped series; a
// query may match on them although /metrics does not carry them.
var targetLabels = []string{"instance", "job"}

// grafanaVars stand in for Grafana's interval variables so that a query
// parses as plain PromQL; other variables appear only inside label values.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// labelValuesRE is a Grafana variable query label_values(metric, label).
var labelValuesRE = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// selector is one metric a dashboard query reads, with the labels it
// matches on, and where it is.
type selector struct {
	metric string
	labels []string
	where  string
}

// dashboardSelectors decodes the dashboard strictly with the Grafana
// Foundation SDK's types (an unknown or mistyped field is an error), parses
// every PromQL query in it (panel targets, annotations) with Prometheus's
// own parser, and returns every metric they select.
func dashboardSelectors(t *testing.T) []selector {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	plugins.RegisterDefaultPlugins()
	// The classic dashboard JSON model, which every Grafana imports; the
	// SDK marks it deprecated in favour of its v2 schema.
	//lint:ignore SA1019 see above
	var d dashboard.Dashboard
	// The SDK's strict decoding returns its (possibly empty) error list as
	// the error, and a union type (panel or row) then drops the value it
	// decoded: check strictly, then read with the SDK's plain decoding.
	err = d.UnmarshalJSONStrict(raw)
	if be := (cog.BuildErrors)(nil); errors.As(err, &be) && len(be) == 0 {
		err = nil
	}
	if err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	//lint:ignore SA1019 the classic model, as above
	d = dashboard.Dashboard{}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	type query struct{ expr, where string }
	var queries []query
	for _, pr := range d.Panels {
		p := pr.Panel
		if p == nil {
			t.Fatalf("%s: rows are not used; every entry of panels is a panel", dashboardFile)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", deref(p.Title))
		}
		for _, tg := range p.Targets {
			q, ok := tg.(*prometheus.Dataquery)
			if !ok {
				t.Fatalf("panel %q: target %T is not a Prometheus query", deref(p.Title), tg)
			}
			queries = append(queries, query{q.Expr, fmt.Sprintf("panel %q", deref(p.Title))})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr == nil {
			t.Fatalf("annotation %q has no expr", a.Name)
		}
		queries = append(queries, query{*a.Expr, fmt.Sprintf("annotation %q", a.Name)})
	}

	var out []selector
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if v.Query == nil || v.Query.String == nil {
			t.Fatalf("variable %s: want a label_values(metric, label) query", v.Name)
		}
		m := labelValuesRE.FindStringSubmatch(*v.Query.String)
		if m == nil {
			t.Fatalf("variable %s: %q is not label_values(metric, label)", v.Name, *v.Query.String)
		}
		out = append(out, selector{metric: m[1], labels: []string{m[2]}, where: "variable " + v.Name})
	}

	p := parser.NewParser(parser.Options{})
	for _, q := range queries {
		e, err := p.ParseExpr(grafanaVars.Replace(q.expr))
		if err != nil {
			t.Fatalf("%s: %q: %v", q.where, q.expr, err)
		}
		n := len(out)
		parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			s := selector{metric: vs.Name, where: q.where}
			for _, lm := range vs.LabelMatchers {
				if lm.Name != model.MetricNameLabel {
					s.labels = append(s.labels, lm.Name)
				}
			}
			out = append(out, s)
			return nil
		})
		if len(out) == n {
			t.Fatalf("%s: %q selects no metric", q.where, q.expr)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// seriesLabels maps each sample name of a scrape (histograms as their
// _bucket, _sum and _count series) to the label names it carries.
func seriesLabels(fams map[string]*dto.MetricFamily) map[string][]string {
	out := map[string][]string{}
	add := func(name string, m *dto.Metric, extra ...string) {
		ls := slices.Clone(extra)
		for _, lp := range m.GetLabel() {
			ls = append(ls, lp.GetName())
		}
		for _, l := range ls {
			if !slices.Contains(out[name], l) {
				out[name] = append(out[name], l)
			}
		}
		if out[name] == nil {
			out[name] = []string{}
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return out
}

// TestDashboardMetricsExist starts the real host with admin on TCP (as the
// systemd unit and the StatefulSet run it), sends requests of every kind
// the dashboard breaks down (a login without its ticket, ok, a game error,
// an unknown command: labelled series appear only once counted), scrapes
// /metrics with the bearer token as Prometheus would, and checks that
// every metric the dashboard queries is there with every label it matches.
func TestDashboardMetricsExist(t *testing.T) {
	sels := dashboardSelectors(t)

	token := "deploy-test-token"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startHost(t, "-admin-addr", "127.0.0.1:0", "-admin-token-file", tokenFile)
	conn, err := client.Dial(p.Addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tk, err := p.Ticket(7)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ line, code string }{{"login 7", "auth"}, {"login 7 " + tk, ""}, {"work", ""}, {"buy nosuchitem", "item"}, {"nosuchcommand", "unknown"}} {
		r, err := conn.Do(step.line)
		if err != nil || r.Code != step.code {
			t.Fatalf("%s: %v %v, want code %q", step.line, r, err, step.code)
		}
	}

	var st struct {
		AdminAddr string `json:"admin_addr"`
	}
	if err := p.Admin(t.Context(), "GET", "/v1/status", &st); err != nil || st.AdminAddr == "" {
		t.Fatalf("admin TCP address: %q %v", st.AdminAddr, err)
	}
	scrape := func(auth string) (*http.Response, []byte) {
		req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+st.AdminAddr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	if resp, _ := scrape(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without the token: %s, want 401", resp.Status)
	}
	resp, body := scrape(token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	tp := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := tp.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	have := seriesLabels(fams)
	for _, s := range sels {
		labels, ok := have[s.metric]
		if !ok {
			t.Errorf("%s queries %s, which the host's /metrics does not have", s.where, s.metric)
			continue
		}
		for _, l := range s.labels {
			if !slices.Contains(labels, l) && !slices.Contains(targetLabels, l) {
				sort.Strings(labels)
				t.Errorf("%s matches %s on label %q; its labels are %v", s.where, s.metric, l, labels)
			}
		}
	}
}
