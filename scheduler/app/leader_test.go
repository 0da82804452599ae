package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

func readyz(base string) (int, string) { return get(base + "/readyz") }

// Two replicas on one Lease: exactly one is ready (and answers the verbs);
// the follower says it is not the leader. When the leader stops, it
// releases the Lease and the follower takes over once its caches are in.
func TestServeLeaderElection(t *testing.T) {
	client := fake.NewClientset(testutil.GPUNode(t, "n1", 1, "T4", 16, 48))
	o := NewOptions()
	o.LeaderElection = LeaderElection{Enabled: true, Namespace: "gpuslice-system", LeaseName: "gpuslice-extender",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond}
	type replica struct {
		base   string
		cancel context.CancelFunc
		done   chan error
	}
	start := func(id string) *replica {
		ln := listen(t)
		_, ctx := ktesting.NewTestContext(t)
		ctx, cancel := context.WithCancel(ctx)
		r := &replica{base: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- Serve(ctx, o, Deps{Client: client, Listener: ln, Version: "test", Identity: id}) }()
		t.Cleanup(func() {
			cancel()
			if err := <-r.done; err != nil {
				t.Logf("replica stopped: %v", err)
			}
		})
		return r
	}
	a, b := start("a"), start("b")
	var leader, follower *replica
	testutil.Poll(t, "one replica to lead and be ready", func() bool {
		ca, _ := readyz(a.base)
		cb, _ := readyz(b.base)
		switch {
		case ca == 200 && cb == 503:
			leader, follower = a, b
		case cb == 200 && ca == 503:
			leader, follower = b, a
		}
		return leader != nil
	})
	if code, body := readyz(follower.base); code != 503 || !strings.Contains(body, "not the leader") {
		t.Fatalf("follower /readyz = %d %q, want 503 not the leader", code, body)
	}
	resp, err := http.Post(follower.base+"/filter", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b2), "not ready: this replica is not the leader") {
		t.Fatalf("follower filter = %d %q, want the retryable 503", resp.StatusCode, b2)
	}

	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Fatalf("leader Serve: %v", err)
	}
	leader.done <- nil // for the cleanup
	testutil.Poll(t, "the follower to take over", func() bool {
		code, _ := readyz(follower.base)
		return code == 200
	})
}

// --leader-elect-identity names the replica in the Lease.
func TestLeaderElectIdentityFlag(t *testing.T) {
	client := fake.NewClientset(testutil.GPUNode(t, "n1", 1, "T4", 16, 48))
	o := NewOptions()
	parseFlags(t, o, "--listen-address=127.0.0.1:0", "--leader-elect", "--leader-elect-identity=replica-a_1", "--leader-elect-lease-duration=3s",
		"--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=100ms")
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	startServe(t, o, Deps{Client: client, Version: "test"})
	var holder string
	testutil.Poll(t, "the Lease to name the replica", func() bool {
		l, err := client.CoordinationV1().Leases("gpuslice-system").Get(t.Context(), "gpuslice-extender", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return false
		}
		holder = *l.Spec.HolderIdentity
		return true
	})
	if holder != "replica-a_1" {
		t.Errorf("Lease holder %q, want replica-a_1", holder)
	}
}
