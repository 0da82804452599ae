package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// Bounds of TestInputBounds.
const (
	// memGrowthLimitKiB is how much the extender's peak RSS may grow while
	// it refuses the oversized bodies.
	memGrowthLimitKiB = 64 << 10
	// halfSentLimit is how long a connection with a half-sent body may stay
	// open.
	halfSentLimit = 2 * time.Minute
)

// hugeBody is an endless-looking JSON body of n bytes, produced on the fly.
func hugeBody(n int64) io.Reader {
	head := `{"Pod":{"metadata":{"name":"`
	return io.MultiReader(strings.NewReader(head), io.LimitReader(repeatByte('a'), n-int64(len(head))))
}

type repeatByte byte

func (b repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// halfSentBody opens a connection with kube-scheduler's certificate, sends
// the headers and part of a body, and returns how long the extender kept
// the connection open (limit if it was still open then).
func halfSentBody(c *harness.Cluster, cert *tls.Certificate, limit time.Duration) (time.Duration, error) {
	conn, err := tls.Dial("tcp", c.ExtenderAddr(), &tls.Config{RootCAs: c.ExtenderTLS.CA.Pool(), Certificates: []tls.Certificate{*cert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	begin := time.Now()
	if _, err := fmt.Fprintf(conn, "POST /filter HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"Pod\":{", c.ExtenderAddr()); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	if err := conn.SetReadDeadline(begin.Add(limit)); err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, conn)
	held := time.Since(begin)
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return limit, nil
	}
	return held, nil
}

// TestInputBounds is issue 9's class 7 (input bounds): a huge quantity is
// reported as too large (not as "must be a whole number"); a 100 MB body,
// and eight concurrent 60 MB bodies, are refused without the extender's
// memory growing by more than 64 MiB; a half-sent body does not hold its
// connection open; and an inventory that claims 1,000 core units on one GPU
// does not let two pods of 100 core units share it.
func TestInputBounds(t *testing.T) {
	c := startCluster(t, harness.Options{})
	e := newEnv(t, c, oneGPU())
	node := e.group + "-0"
	client := schedulerClient(t, c)
	cert, err := c.ExtenderTLS.SchedulerCert()
	if err != nil {
		t.Fatal(err)
	}

	// The half-sent body runs beside the other subtests.
	type heldResult struct {
		held time.Duration
		err  error
	}
	half := make(chan heldResult, 1)
	go func() {
		h, err := halfSentBody(c, cert, halfSentLimit)
		half <- heldResult{h, err}
	}()

	t.Run("HugeQuantity", func(t *testing.T) {
		for _, rn := range []corev1.ResourceName{api.ResourceGPUMem, api.ResourceGPUCore, api.ResourceGPUCount} {
			for _, q := range []string{"1e16", "9300000000000000", "1e18"} {
				t.Run(fmt.Sprintf("%s=%s", rn, q), func(t *testing.T) {
					p := e.one("huge", 1, 0, 0)
					p.UID = "00000000-0000-4000-8000-000000000001"
					p.Spec.Containers[0].Resources.Limits[rn] = resource.MustParse(q)
					p.Spec.Containers[0].Resources.Requests = p.Spec.Containers[0].Resources.Limits.DeepCopy()
					got, err := callExtender(e.ctx, c, client, "filter", extenderv1.ExtenderArgs{Pod: p, NodeNames: &[]string{node}}, 0)
					if err != nil {
						t.Fatal(err)
					}
					var res extenderv1.ExtenderFilterResult
					if err := json.Unmarshal(got.body, &res); err != nil {
						t.Fatalf("filter answer %d %s: %v", got.status, got.body, err)
					}
					all := res.Error
					for _, m := range []map[string]string{res.FailedNodes, res.FailedAndUnresolvableNodes} {
						for _, r := range m {
							all += " " + r
						}
					}
					if res.NodeNames != nil && len(*res.NodeNames) > 0 {
						t.Errorf("node %v feasible for %s=%s", *res.NodeNames, rn, q)
					}
					if !strings.Contains(all, "too large") || strings.Contains(all, "whole number") {
						t.Errorf("reason %q, want it to say the quantity is too large", all)
					}
				})
			}
		}
	})

	t.Run("HugeBodies", func(t *testing.T) {
		pid := c.Pids()[harness.Extender]
		before, err := procStatusKiB(pid, "VmHWM")
		if err != nil {
			t.Fatal(err)
		}
		refused := func(size int64) error {
			got, err := callExtender(e.ctx, c, client, "filter", hugeBody(size), size)
			if err != nil {
				return nil // the extender closed the connection on it
			}
			if got.status == http.StatusOK {
				return fmt.Errorf("%d MB body answered 200: %.200s", size>>20, got.body)
			}
			return nil
		}
		if err := refused(100 << 20); err != nil {
			t.Error(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- refused(60 << 20) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		after, err := procStatusKiB(pid, "VmHWM")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("extender peak RSS %d MiB -> %d MiB", before>>10, after>>10)
		if after-before > memGrowthLimitKiB {
			t.Errorf("peak RSS grew by %d MiB refusing the bodies, want at most %d MiB", (after-before)>>10, memGrowthLimitKiB>>10)
		}
		// The extender still answers.
		p := e.one("after-bodies", 1, 0, 0)
		p.UID = "00000000-0000-4000-8000-000000000002"
		p.Spec.Containers[0].Resources.Requests = p.Spec.Containers[0].Resources.Limits.DeepCopy()
		got, err := callExtender(e.ctx, c, client, "filter", extenderv1.ExtenderArgs{Pod: p, NodeNames: &[]string{node}}, 0)
		if err != nil || got.status != http.StatusOK || !bytes.Contains(got.body, []byte(node)) {
			t.Errorf("filter after the bodies: %+v, %v", got, err)
		}
	})

	t.Run("InventoryCoreUnits", func(t *testing.T) {
		inv := *e.inv[node]
		g := inv.GPUs[0]
		g.CoreUnits = 1000
		inv.GPUs = []api.GPU{g}
		e.setInventory(node, &inv, true)
		e.create([]*corev1.Pod{e.one("core-a", 1, 100, 0), e.one("core-b", 1, 100, 0)}, 2)
		var bound int
		e.poll("both core pods scheduled or unschedulable", 100*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
			bound = 0
			for _, n := range []string{"core-a", "core-b"} {
				p, err := c.Client.CoreV1().Pods(e.ns).Get(ctx, n, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				cond := scheduledCondition(p)
				switch {
				case p.Spec.NodeName != "":
					bound++
				case cond == nil || cond.Reason != corev1.PodReasonUnschedulable:
					return false, fmt.Errorf("%s not tried yet", n)
				}
			}
			return true, nil
		})
		if bound > 1 {
			t.Fatalf("%d pods of 100 core units bound on one GPU whose inventory claims 1000", bound)
		}
		t.Logf("%d of 2 bound", bound)
	})

	r := <-half
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.held >= halfSentLimit {
		t.Errorf("a half-sent body held its connection open for %v and more", halfSentLimit)
	} else {
		t.Logf("half-sent body: connection closed after %v", r.held.Round(time.Millisecond))
	}
}
