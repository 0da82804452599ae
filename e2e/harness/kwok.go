package harness

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
)

// Kwok is the component (and log file) name of kwok, which plays the
// kubelet of simulated nodes (StartKwok).
const Kwok = "kwok"

// KwokNodeLabel marks the nodes kwok manages: GPUNode.Labels with it set
// to "fake" get a kwok kubelet (kwok's own convention).
const KwokNodeLabel = "kwok.x-k8s.io/node"

// KwokStages is the kwok config file with its default node and pod
// stages, next to the kwok binary in K8S_BIN (`make kwok` writes it with
// hack/kwok/stages).
const KwokStages = "kwok-stages.yaml"

// StartKwok starts kwok (sigs.k8s.io/kwok, built by `make kwok` into
// K8S_BIN from hack/kwok) with the admin kubeconfig and the stages of
// K8S_BIN/kwok-stages.yaml. It manages the nodes labelled KwokNodeLabel=fake as a kubelet
// would: it moves their bound pods to Running, finishes their deletion
// (so `kubectl delete pod` returns) and keeps their node leases. It
// waits until kwok's /healthz answers.
func (c *Cluster) StartKwok(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := c.run(Kwok, filepath.Join(c.k8sBin, Kwok), []string{
		"--kubeconfig=" + c.KubeconfigPath,
		"--config=" + filepath.Join(c.k8sBin, KwokStages),
		"--manage-nodes-with-label-selector=" + KwokNodeLabel + "=fake",
		"--server-address=127.0.0.1:" + strconv.Itoa(port),
	})
	if err != nil {
		return fmt.Errorf("%w (build it with `make kwok`)", err)
	}
	return c.waitReady(ctx, p, func(ctx context.Context) bool {
		return httpOK(ctx, http.DefaultClient, "http://127.0.0.1:"+strconv.Itoa(port)+"/healthz")
	})
}
