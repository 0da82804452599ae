package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// TestUnauthenticatedBind is issue 9's class 6 (anyone who can reach the
// extender can bind). The extender serves mutual TLS: a client without a
// certificate, or with one the extender's CA did not sign, gets no answer
// from any verb; and even kube-scheduler's certificate cannot /bind a pod
// the extender never filtered feasible on that node (here a pod whose
// nodeSelector matches no node, so kube-scheduler never asks).
func TestUnauthenticatedBind(t *testing.T) {
	c := startCluster(t, harness.Options{})
	e := newEnv(t, c, oneGPU())
	node := e.group + "-0"
	p := e.one("nowhere", 4, 0, 0)
	p.Spec.NodeSelector = map[string]string{groupLabel: e.group + "-nowhere"}
	e.create([]*corev1.Pod{p}, 1)
	e.waitFailedScheduling("nowhere", time.Minute, "node affinity/selector")
	pod, err := c.Client.CoreV1().Pods(e.ns).Get(e.ctx, "nowhere", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bindArgs := extenderv1.ExtenderBindingArgs{PodName: pod.Name, PodNamespace: pod.Namespace, PodUID: pod.UID, Node: node}
	filterArgs := extenderv1.ExtenderArgs{Pod: pod, NodeNames: &[]string{node}}

	other, err := harness.NewCertAuthority("not-the-extenders-ca")
	if err != nil {
		t.Fatal(err)
	}
	cp, kp, err := other.Issue(harness.ExtenderServiceAccount, false)
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{
		{"NoClientCertificate", c.ExtenderTLS.HTTPClient(nil)},
		{"UntrustedClientCertificate", c.ExtenderTLS.HTTPClient(&untrusted)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.client.CloseIdleConnections()
			for verb, body := range map[string]any{"bind": bindArgs, "filter": filterArgs, "prioritize": filterArgs} {
				got, err := callExtender(e.ctx, c, tc.client, verb, body, 0)
				switch {
				case err != nil:
					t.Logf("/%s refused: %v", verb, err)
				case got.status == http.StatusUnauthorized || got.status == http.StatusForbidden:
					t.Logf("/%s refused: %d %s", verb, got.status, got.body)
				default:
					t.Errorf("/%s answered %d %s; want the TLS handshake (or 401/403) to refuse a client without a trusted certificate", verb, got.status, got.body)
				}
			}
		})
	}

	t.Run("BindNotFilteredFeasible", func(t *testing.T) {
		got, err := callExtender(e.ctx, c, schedulerClient(t, c), "bind", bindArgs, 0)
		if err != nil {
			t.Fatal(err)
		}
		var res extenderv1.ExtenderBindingResult
		if got.status == http.StatusOK {
			if err := json.Unmarshal(got.body, &res); err != nil {
				t.Fatalf("bind answer %s: %v", got.body, err)
			}
			if res.Error == "" {
				t.Errorf("/bind of a pod never filtered feasible on %s succeeded: %s", node, got.body)
			}
		}
		t.Logf("/bind refused: %d %s", got.status, strings.TrimSpace(string(got.body)))
	})

	// Whatever was answered, the pod is not bound and has no placement.
	got, err := c.Client.CoreV1().Pods(e.ns).Get(e.ctx, "nowhere", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "" || got.Annotations[api.AnnotationPlacement] != "" {
		t.Fatalf("pod bound to %q with placement %q", got.Spec.NodeName, got.Annotations[api.AnnotationPlacement])
	}
}
