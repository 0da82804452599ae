package extender

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

func newTestServer(t *testing.T, maxBody int64) (*httptest.Server, *cache.Cache, *Readiness) {
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	ext, c, _ := newTestExtender(t, testNodes(t), p)
	logger, _ := ktesting.NewTestContext(t)
	ready := NewReadiness(false)
	srv := httptest.NewServer(NewHandler(logger, ext, ready, HandlerOptions{Version: "v-test", MaxBodyBytes: maxBody}))
	t.Cleanup(srv.Close)
	return srv, c, ready
}

func TestHTTPBadInput(t *testing.T) {
	srv, c, ready := newTestServer(t, 4096)
	ready.SetSynced(true)
	validPod := `{"metadata":{"name":"p","namespace":"default","uid":"uid-p"},"spec":{"containers":[{"name":"c","resources":{"limits":{"gpuslice.io/gpu-mem":"4"}}}]}}`
	tests := []struct {
		name, method, path, ct, body string
		wantCode                     int
		wantMsg                      string
	}{
		{"malformed json", "POST", "/filter", "application/json", `{"pod": `, 400, "not valid JSON"},
		{"wrong type", "POST", "/filter", "application/json", `{"pod": 7}`, 400, "not valid JSON"},
		{"empty body", "POST", "/prioritize", "application/json", ``, 400, "empty"},
		{"trailing data", "POST", "/filter", "application/json", `{"pod":` + validPod + `,"nodenames":["a100"]} {}`, 400, "trailing data"},
		{"oversized", "POST", "/filter", "application/json", `{"nodenames":["` + strings.Repeat("x", 5000) + `"]}`, 413, "larger than 4096 bytes"},
		{"wrong content type", "POST", "/filter", "text/xml", `<x/>`, 415, "content type"},
		{"no pod", "POST", "/filter", "application/json", `{"nodenames":["a100"]}`, 400, "no pod"},
		{"no nodes", "POST", "/filter", "application/json", `{"pod":` + validPod + `}`, 400, "neither nodenames nor nodes"},
		{"pod without uid", "POST", "/prioritize", "application/json", `{"pod":{"metadata":{"name":"p"}},"nodenames":[]}`, 400, "no name or uid"},
		{"unknown verb", "POST", "/reserve", "application/json", `{}`, 404, "unknown path"},
		{"wrong method", "GET", "/filter", "", ``, 405, "not allowed"},
		{"bind missing fields", "POST", "/bind", "application/json", `{"podName":"p"}`, 400, "need podName, podNamespace, podUID and node"},
		{"preempt without pod", "POST", "/preempt", "application/json", `{}`, 400, "no pod"},
	}
	before := testutil.FreeSlices(c)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := testutil.Do(t, tc.method, srv.URL+tc.path, tc.ct, tc.body)
			if code != tc.wantCode || !strings.Contains(body, tc.wantMsg) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, code, body, tc.wantCode, tc.wantMsg)
			}
		})
	}
	if diff := cmp.Diff(before, testutil.FreeSlices(c)); diff != "" {
		t.Errorf("bad input changed the cache (-before +after):\n%s", diff)
	}
	if a, cf := c.Stats(); a+cf != 0 {
		t.Errorf("bad input placed pods: %d assumed, %d confirmed", a, cf)
	}
}

func TestHTTPRoundTrip(t *testing.T) {
	srv, c, ready := newTestServer(t, 0)
	ready.SetSynced(true)
	for _, path := range []string{"/healthz", "/readyz", "/version"} {
		if code, body := testutil.Do(t, "GET", srv.URL+path, "", ""); code != 200 {
			t.Errorf("GET %s = %d %q", path, code, body)
		}
	}
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	args, _ := json.Marshal(extenderv1.ExtenderArgs{Pod: p, NodeNames: names("a100", "t4", "cpu-only")})
	code, body := testutil.Do(t, "POST", srv.URL+"/filter", "application/json; charset=utf-8", string(args))
	if code != 200 {
		t.Fatalf("filter = %d %s", code, body)
	}
	var fr extenderv1.ExtenderFilterResult
	if err := json.Unmarshal([]byte(body), &fr); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a100", "t4"}, *fr.NodeNames); diff != "" {
		t.Errorf("filter nodes (-want +got):\n%s", diff)
	}
	code, body = testutil.Do(t, "POST", srv.URL+"/prioritize", "application/json", string(args))
	var hp extenderv1.HostPriorityList
	if err := json.Unmarshal([]byte(body), &hp); code != 200 || err != nil || len(hp) == 0 {
		t.Fatalf("prioritize = %d %s %v", code, body, err)
	}
	bargs, _ := json.Marshal(bindArgs(p, "t4"))
	code, body = testutil.Do(t, "POST", srv.URL+"/bind", "application/json", string(bargs))
	var br extenderv1.ExtenderBindingResult
	if err := json.Unmarshal([]byte(body), &br); code != 200 || err != nil || br.Error != "" {
		t.Fatalf("bind = %d %s %v", code, body, err)
	}
	// Binding again reports the error in the result body.
	_, body = testutil.Do(t, "POST", srv.URL+"/bind", "application/json", string(bargs))
	if err := json.Unmarshal([]byte(body), &br); err != nil || !strings.Contains(br.Error, "already bound") {
		t.Fatalf("second bind = %s", body)
	}
	if diff := cmp.Diff(map[string][]int64{"a100": {40, 40, 40, 40, 40, 40, 40, 40}, "t4": {12, 16, 16, 16}}, testutil.FreeSlices(c)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzHandlers feeds arbitrary bodies to every verb: the handlers must
// answer (never panic) and a 4xx must leave the cache unchanged.
func FuzzHandlers(f *testing.F) {
	seeds := []string{
		`{"pod":{"metadata":{"name":"p","uid":"u"},"spec":{"containers":[{"name":"c","resources":{"limits":{"gpuslice.io/gpu-mem":"4"}}}]}},"nodenames":["a100"]}`,
		`{"pod":{"metadata":{"name":"p","uid":"u"},"spec":{"containers":[{"name":"c","resources":{"limits":{"gpuslice.io/gpu-mem":"-4","gpuslice.io/gpu-count":"1e30"}}}]}},"nodes":{"items":[{"metadata":{"name":"t4"}}]}}`,
		`{"podName":"p","podNamespace":"default","podUID":"uid-p","node":"t4"}`,
		`{"pod":{"metadata":{"name":"p"}},"nodeNameToMetaVictims":{"t4":{"pods":[{"uid":"x"}]}}}`,
		`{`, `null`, `[]`, `""`,
	}
	for _, s := range seeds {
		for _, verb := range []byte{0, 1, 2, 3} {
			f.Add(verb, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, verb byte, body []byte) {
		p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
		ext, c, _ := newTestExtender(t, []*v1.Node{testutil.GPUNode(t, "t4", 4, "T4", 16, 48)}, p)
		logger, _ := ktesting.NewTestContext(t)
		h := NewHandler(logger, ext, syncedGate(), HandlerOptions{Version: "fuzz", MaxBodyBytes: 1 << 16})
		path := []string{"/filter", "/prioritize", "/bind", "/preempt"}[int(verb)%4]
		before := testutil.FreeSlices(c)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s answered %d: %s", path, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 {
			if diff := cmp.Diff(before, testutil.FreeSlices(c)); diff != "" {
				t.Fatalf("%s answered %d but changed the cache:\n%s", path, rec.Code, diff)
			}
		}
	})
}
