package harness

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// Each SchedulerSetup field changes exactly its part of the shipped
// configuration.
func TestSchedulerSetup(t *testing.T) {
	c := &Cluster{Dir: t.TempDir(), ExtenderURL: "https://127.0.0.1:12345/"}
	if err := c.resolveRoot(); err != nil {
		t.Fatal(err)
	}
	read := func(s SchedulerSetup) map[string]any {
		out := filepath.Join(c.Dir, "cfg.yaml")
		if err := c.writeSchedulerConfigWith(out, s); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	shipped := read(SchedulerSetup{})
	if shipped["extenders"] == nil || shipped["percentageOfNodesToScore"] == nil {
		t.Fatalf("shipped config lacks extenders or percentageOfNodesToScore: %v", shipped)
	}
	tests := []struct {
		name  string
		setup SchedulerSetup
		edit  func(cfg map[string]any)
	}{
		{name: "without extender", setup: SchedulerSetup{WithoutExtender: true}, edit: func(cfg map[string]any) { delete(cfg, "extenders") }},
		{name: "default percentage", setup: SchedulerSetup{DefaultPercentageOfNodesToScore: true}, edit: func(cfg map[string]any) { delete(cfg, "percentageOfNodesToScore") }},
		{name: "no leader election", setup: SchedulerSetup{WithoutLeaderElection: true}, edit: func(cfg map[string]any) {
			cfg["leaderElection"] = map[string]any{"leaderElect": false}
		}},
	}
	for _, tc := range tests {
		want := read(SchedulerSetup{})
		tc.edit(want)
		if diff := cmp.Diff(want, read(tc.setup)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
