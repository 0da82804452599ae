package chartrender

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	schedvalidation "k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// Object is one decoded YAML document.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	// Typed is the strictly decoded object: a client-go type, or the
	// internal KubeSchedulerConfiguration (validated as kube-scheduler
	// does), or a kustomize Kustomization. Nil for kinds of CRDs this
	// package does not know (only cert-manager.io's and
	// monitoring.coreos.com's are accepted).
	Typed any
	// Raw is the document.
	Raw []byte
}

// foreignGroups are API groups of CRDs the chart may render objects of
// (cert-manager mode; the Prometheus Operator's ServiceMonitor and
// PrometheusRule) but whose types are not compiled in here.
var foreignGroups = []string{"cert-manager.io/", "monitoring.coreos.com/"}

// DecodeStrict decodes every YAML document of b: Kubernetes objects with
// client-go's scheme, KubeSchedulerConfigurations with kube-scheduler's,
// and kustomizations with kustomize's types. Unknown or duplicate fields,
// unknown kinds and invalid scheduler configurations are errors; name says
// where b came from.
func DecodeStrict(name string, b []byte) ([]Object, error) {
	k8s := json.NewSerializerWithOptions(json.DefaultMetaFactory, clientgoscheme.Scheme, clientgoscheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if head.APIVersion == "" && head.Kind == "" {
			var fields map[string]any
			if err := yaml.Unmarshal(doc, &fields); err != nil || len(fields) > 0 {
				return nil, fmt.Errorf("%s: document %d has no apiVersion and kind", name, i)
			}
			continue // empty (comments only)
		}
		o := Object{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, Raw: doc}
		where := fmt.Sprintf("%s: %s %s", name, head.Kind, head.Metadata.Name)
		switch {
		case head.Kind == "KubeSchedulerConfiguration":
			obj, err := DecodeSchedulerConfig(doc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			o.Typed = obj
		case head.Kind == "Kustomization":
			var k kustomizetypes.Kustomization
			if err := yaml.UnmarshalStrict(doc, &k); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			o.Typed = &k
		case foreign(head.APIVersion):
		default:
			obj, _, err := k8s.Decode(doc, nil, nil)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			o.Typed = obj
		}
		out = append(out, o)
	}
}

func foreign(apiVersion string) bool {
	for _, g := range foreignGroups {
		if strings.HasPrefix(apiVersion, g) {
			return true
		}
	}
	return false
}

// DecodeSchedulerConfig decodes a KubeSchedulerConfiguration strictly, as
// kube-scheduler's --config does, applies its defaults and validates it.
func DecodeSchedulerConfig(b []byte) (*schedconfig.KubeSchedulerConfiguration, error) {
	obj, _, err := schedscheme.Codecs.UniversalDecoder().Decode(b, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decode scheduler config: %w", err)
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok {
		return nil, fmt.Errorf("decode scheduler config: got %T", obj)
	}
	if err := schedvalidation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		return nil, fmt.Errorf("invalid scheduler config: %w", err)
	}
	return cfg, nil
}
