package extender

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

func TestReadinessCheck(t *testing.T) {
	tests := []struct {
		name                        string
		needLeader, synced, leading bool
		wantErr                     string
	}{
		{name: "not synced", wantErr: "not ready: the node and pod caches are not synced yet"},
		{name: "synced", synced: true},
		{name: "leading does not replace sync", needLeader: true, leading: true, wantErr: "not ready: the node and pod caches are not synced yet"},
		{name: "synced follower", needLeader: true, synced: true, wantErr: "not ready: this replica is not the leader"},
		{name: "synced leader", needLeader: true, synced: true, leading: true},
		{name: "leading ignored without election", synced: true, leading: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReadiness(tc.needLeader)
			r.SetSynced(tc.synced)
			r.SetLeading(tc.leading)
			err := r.Check()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrNotReady) {
				t.Fatalf("Check() = %v, want %q wrapping ErrNotReady", err, tc.wantErr)
			}
		})
	}
}

// Until the gate passes every verb answers 503 with a JSON "not ready"
// error and changes nothing; /healthz stays 200 and /readyz follows the
// gate.
func TestHTTPVerbsGatedUntilReady(t *testing.T) {
	srv, c, ready := newTestServer(t, 0)
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	args, _ := json.Marshal(extenderv1.ExtenderArgs{Pod: p, NodeNames: names("a100", "t4")})
	bargs, _ := json.Marshal(bindArgs(p, "t4"))
	pargs, _ := json.Marshal(extenderv1.ExtenderPreemptionArgs{Pod: p})
	verbs := map[string]string{"/filter": string(args), "/prioritize": string(args), "/preempt": string(pargs), "/bind": string(bargs)}
	for path, body := range verbs {
		code, got := testutil.Do(t, "POST", srv.URL+path, "application/json", body)
		var eb errorBody
		if err := json.Unmarshal([]byte(got), &eb); code != 503 || err != nil || !strings.HasPrefix(eb.Error, "not ready: ") {
			t.Errorf("%s before sync = %d %q, want 503 with a JSON \"not ready: ...\" error", path, code, got)
		}
	}
	if code, _ := testutil.Do(t, "GET", srv.URL+"/readyz", "", ""); code != 503 {
		t.Errorf("/readyz before sync = %d, want 503", code)
	}
	if code, _ := testutil.Do(t, "GET", srv.URL+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz before sync = %d, want 200", code)
	}
	if a, cf := c.Stats(); a+cf != 0 {
		t.Fatalf("gated verbs placed pods: %d assumed, %d confirmed", a, cf)
	}
	ready.SetSynced(true)
	if code, _ := testutil.Do(t, "GET", srv.URL+"/readyz", "", ""); code != 200 {
		t.Errorf("/readyz after sync = %d, want 200", code)
	}
	for _, path := range []string{"/filter", "/prioritize", "/preempt", "/bind"} {
		if code, got := testutil.Do(t, "POST", srv.URL+path, "application/json", verbs[path]); code != 200 {
			t.Errorf("%s after sync = %d %q, want 200", path, code, got)
		}
	}
	if a, _ := c.Stats(); a != 1 {
		t.Errorf("bind after sync assumed %d pods, want 1", a)
	}
}
