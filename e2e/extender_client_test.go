package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gpuslice/gpuslice/e2e/harness"
)

// extenderCall is one HTTP call to the extender, as kube-scheduler (or an
// attacker) makes it.
type extenderCall struct {
	status int
	body   []byte
}

// callExtender POSTs body (JSON-encoded unless it is an io.Reader) to the
// extender's verb with client, and returns what came back.
func callExtender(ctx context.Context, c *harness.Cluster, client *http.Client, verb string, body any, size int64) (*extenderCall, error) {
	var r io.Reader
	switch b := body.(type) {
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s body: %w", verb, err)
		}
		r, size = bytes.NewReader(j), int64(len(j))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.ExtenderURL+verb, r)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST /%s: %w", verb, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("POST /%s: read answer: %w", verb, err)
	}
	return &extenderCall{status: resp.StatusCode, body: out}, nil
}

// schedulerClient returns an HTTP client with kube-scheduler's client
// certificate.
func schedulerClient(t *testing.T, c *harness.Cluster) *http.Client {
	t.Helper()
	cert, err := c.ExtenderTLS.SchedulerCert()
	if err != nil {
		t.Fatal(err)
	}
	cl := c.ExtenderTLS.HTTPClient(cert)
	t.Cleanup(cl.CloseIdleConnections)
	return cl
}

// procStatusKiB reads a field (VmRSS, VmHWM) of /proc/PID/status in KiB.
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
