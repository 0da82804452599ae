package extender

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/klog/v2/ktesting"

	"github.com/gpuslice/gpuslice/scheduler/internal/testutil"
)

// TestProfiling: /debug/pprof/ is served only with Profiling, and behind
// the verbs' client authentication.
func TestProfiling(t *testing.T) {
	p := testutil.Pod("p", testutil.Container("c", 4, 0, 0))
	for _, tc := range []struct {
		name       string
		opts       HandlerOptions
		path       string
		wantCode   int
		wantInBody string
	}{
		{"off by default", HandlerOptions{}, "/debug/pprof/", http.StatusNotFound, "unknown path"},
		{"index", HandlerOptions{Profiling: true}, "/debug/pprof/", http.StatusOK, "goroutine"},
		{"a named profile", HandlerOptions{Profiling: true}, "/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile"},
		{"cmdline", HandlerOptions{Profiling: true}, "/debug/pprof/cmdline", http.StatusOK, ""},
		{"unknown profile", HandlerOptions{Profiling: true}, "/debug/pprof/nosuch", http.StatusNotFound, "Unknown profile"},
		{"needs the client certificate", HandlerOptions{Profiling: true, RequireClientCert: true}, "/debug/pprof/", http.StatusUnauthorized, "client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext, _, _ := newTestExtender(t, testNodes(t), p)
			logger, _ := ktesting.NewTestContext(t)
			srv := httptest.NewServer(NewHandler(logger, ext, NewReadiness(false), tc.opts))
			t.Cleanup(srv.Close)
			code, body := testutil.Do(t, http.MethodGet, srv.URL+tc.path, "", "")
			if code != tc.wantCode || !strings.Contains(body, tc.wantInBody) {
				t.Errorf("GET %s = %d %q, want %d with %q", tc.path, code, truncate(body), tc.wantCode, tc.wantInBody)
			}
		})
	}
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
