package extender

import (
	"fmt"
	"os"
	"sort"

	"sigs.k8s.io/yaml"

	"github.com/gpuslice/gpuslice/allocator"
)

// Policies resolves the placement policy of a pod from its scheduler
// profile (spec.schedulerName). Extenders are global in a
// KubeSchedulerConfiguration, so the per-profile choice is made here. Each
// policy is resolved once at start-up; a profile naming the same policy as
// another shares its instance (and its learned workload histogram).
type Policies struct {
	def       allocator.Policy
	byProfile map[string]allocator.Policy
}

// PolicyConfig is the --policy-config file: the default policy and a policy
// per kube-scheduler profile.
//
//	policy: binpack
//	profiles:
//	  gpu-frag-aware: gpuslice
type PolicyConfig struct {
	Policy   string            `json:"policy,omitempty"`
	Profiles map[string]string `json:"profiles,omitempty"`
}

// LoadPolicyConfig reads a policy configuration file (YAML or JSON).
func LoadPolicyConfig(path string) (*PolicyConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy config: %w", err)
	}
	var c PolicyConfig
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("parse policy config %s: %w", path, err)
	}
	return &c, nil
}

// NewPolicies resolves the default policy and the per-profile policies.
func NewPolicies(def string, profiles map[string]string) (*Policies, error) {
	byName := map[string]allocator.Policy{}
	resolve := func(name string) (allocator.Policy, error) {
		if name == "" {
			name = allocator.PolicyBinpack
		}
		if p, ok := byName[name]; ok {
			return p, nil
		}
		p, err := allocator.NewPolicy(name)
		if err != nil {
			return nil, err
		}
		byName[name] = p
		return p, nil
	}
	d, err := resolve(def)
	if err != nil {
		return nil, err
	}
	ps := &Policies{def: d, byProfile: map[string]allocator.Policy{}}
	profileNames := make([]string, 0, len(profiles))
	for prof := range profiles {
		profileNames = append(profileNames, prof)
	}
	sort.Strings(profileNames)
	for _, prof := range profileNames {
		if prof == "" {
			return nil, fmt.Errorf("policy for an empty profile name")
		}
		p, err := resolve(profiles[prof])
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", prof, err)
		}
		ps.byProfile[prof] = p
	}
	return ps, nil
}

// SinglePolicy returns Policies that use p for every profile.
func SinglePolicy(p allocator.Policy) *Policies {
	return &Policies{def: p, byProfile: map[string]allocator.Policy{}}
}

// For returns the policy of a scheduler profile.
func (ps *Policies) For(schedulerName string) allocator.Policy {
	if p, ok := ps.byProfile[schedulerName]; ok {
		return p
	}
	return ps.def
}

// Describe returns profile=policy pairs, sorted, for logs.
func (ps *Policies) Describe() []string {
	out := make([]string, 0, len(ps.byProfile))
	for prof, p := range ps.byProfile {
		out = append(out, prof+"="+p.Name())
	}
	sort.Strings(out)
	return out
}

// All returns the distinct policies in use, the default first, then by
// name.
func (ps *Policies) All() []allocator.Policy {
	out := []allocator.Policy{ps.def}
	seen := map[allocator.Policy]bool{ps.def: true}
	var rest []allocator.Policy
	for _, p := range ps.byProfile {
		if !seen[p] {
			seen[p] = true
			rest = append(rest, p)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name() < rest[j].Name() })
	return append(out, rest...)
}
