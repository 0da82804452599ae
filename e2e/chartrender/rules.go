package chartrender

import (
	"errors"
	"fmt"

	"sigs.k8s.io/yaml"
)

// RulesFile is the chart's files/prometheus-rules.yaml: a Prometheus rule
// file, which the chart's PrometheusRule carries as its spec.
const RulesFile = "files/prometheus-rules.yaml"

// DashboardFile is the chart's Grafana dashboard.
const DashboardFile = "files/grafana-dashboard.json"

// Rules is a Prometheus rule file (the fields gpuslice uses).
type Rules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []Rule `json:"rules"`
	} `json:"groups"`
}

// Rule is one alerting or recording rule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DecodeRules decodes a rule file strictly: unknown fields are errors,
// and every rule needs a name and an expression.
func DecodeRules(b []byte) (*Rules, error) {
	var r Rules
	if err := yaml.UnmarshalStrict(b, &r); err != nil {
		return nil, fmt.Errorf("decode rules: %w", err)
	}
	if len(r.Groups) == 0 {
		return nil, errors.New("rules: no group")
	}
	for _, g := range r.Groups {
		for i, rule := range g.Rules {
			if (rule.Alert == "") == (rule.Record == "") || rule.Expr == "" {
				return nil, fmt.Errorf("rules: group %s rule %d needs alert or record, and expr", g.Name, i)
			}
		}
	}
	return &r, nil
}
