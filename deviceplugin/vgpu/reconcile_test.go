package vgpu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	"github.com/gpuslice/gpuslice/deviceplugin/sysfs"
)

func newReconciler(f sysfs.FS, inUse fakeInUse) *Reconciler {
	return &Reconciler{FS: f, InUse: inUse, NewUUID: seqUUIDs()}
}

func decode(t testing.TB, y string) NodeConfig {
	t.Helper()
	c, err := DecodeNodeConfig([]byte(y))
	must(t, err)
	return c
}

// readTestdata returns a node config file of testdata.
func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	must(t, err)
	return string(b)
}

// decodeFile decodes a node config file of testdata.
func decodeFile(t testing.TB, name string) NodeConfig {
	t.Helper()
	return decode(t, readTestdata(t, name))
}

// wantActions checks that a reconcile made exactly the actions want and
// reported no problem.
func wantActions(t *testing.T, rep *Report, want []Action) {
	t.Helper()
	if d := cmp.Diff(want, rep.Actions); d != "" {
		t.Errorf("actions (-want +got):\n%s", d)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("problems: %v", problems(rep))
	}
}

func reconcile(t *testing.T, r *Reconciler, in Input) *Report {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	rep, err := r.Reconcile(ctx, in)
	must(t, err)
	return rep
}

func problems(rep *Report) []string {
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.String())
	}
	return out
}

func ids(devs []Device) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.ID)
	}
	return out
}

func TestReconcileCreatesWhatIsMissing(t *testing.T) {
	f := newNode(t)
	r := newReconciler(f, fakeInUse{})
	rep := reconcile(t, r, Input{Config: decodeFile(t, "full.yaml")})
	want := []Action{
		{GPU: mdevGPU, Op: OpCreateMdev, Device: uuidN(1), Type: "GRID T4-4Q"},
		{GPU: mdevGPU, Op: OpCreateMdev, Device: uuidN(2), Type: "GRID T4-4Q"},
		{GPU: mdevGPU, Op: OpCreateMdev, Device: uuidN(3), Type: "GRID T4-4Q"},
		{GPU: sriovGPU, Op: OpSetVFType, Device: sriovVFs[0], Type: "NVIDIA L40-4Q"},
		{GPU: sriovGPU, Op: OpSetVFType, Device: sriovVFs[1], Type: "NVIDIA L40-4Q"},
	}
	wantActions(t, rep, want)
	wantDevs := []string{uuidN(1), uuidN(2), uuidN(3), sriovVFs[0], sriovVFs[1], ptGPU}
	if d := cmp.Diff(wantDevs, ids(rep.Devices)); d != "" {
		t.Errorf("devices (-want +got):\n%s", d)
	}
	// A second reconcile of the same config changes nothing.
	again := reconcile(t, r, Input{Config: decodeFile(t, "full.yaml")})
	if len(again.Actions) != 0 || len(again.Problems) != 0 {
		t.Errorf("second reconcile: actions %v, problems %v", again.Actions, problems(again))
	}
	if d := cmp.Diff(rep.Devices, again.Devices); d != "" {
		t.Errorf("devices changed on a no-op reconcile (-first +second):\n%s", d)
	}
}

func TestReconcileChangedConfig(t *testing.T) {
	f := newNode(t)
	r := newReconciler(f, fakeInUse{})
	reconcile(t, r, Input{Config: decodeFile(t, "full.yaml")})
	rep := reconcile(t, r, Input{Config: decodeFile(t, "changed.yaml")})
	want := []Action{
		{GPU: mdevGPU, Op: OpRemoveMdev, Device: uuidN(1), Type: "GRID T4-4Q"},
		{GPU: mdevGPU, Op: OpRemoveMdev, Device: uuidN(2), Type: "GRID T4-4Q"},
		{GPU: mdevGPU, Op: OpRemoveMdev, Device: uuidN(3), Type: "GRID T4-4Q"},
		{GPU: mdevGPU, Op: OpCreateMdev, Device: uuidN(4), Type: "GRID T4-8Q"},
		{GPU: mdevGPU, Op: OpCreateMdev, Device: uuidN(5), Type: "GRID T4-8Q"},
		{GPU: sriovGPU, Op: OpClearVFType, Device: sriovVFs[0], Type: "NVIDIA L40-4Q"},
		{GPU: sriovGPU, Op: OpClearVFType, Device: sriovVFs[1], Type: "NVIDIA L40-4Q"},
		{GPU: sriovGPU, Op: OpSetVFType, Device: sriovVFs[0], Type: "NVIDIA L40-12Q"},
	}
	wantActions(t, rep, want)
	for _, d := range rep.Devices {
		if d.Kind == KindMdev && d.FramebufferMiB != 8192 || d.Kind == KindVF && d.FramebufferMiB != 12288 {
			t.Errorf("device %+v has the wrong framebuffer", d)
		}
	}
	// The passthrough and none entries are gone: those GPUs are not touched.
	if g := gpu(t, rep.Node, ptGPU); g.Driver != VFIODriver {
		t.Errorf("unmanaged passthrough GPU now on %q", g.Driver)
	}
}

func TestReconcileNeverRemovesHeldDevices(t *testing.T) {
	f := newNode(t)
	r := newReconciler(f, fakeInUse{})
	reconcile(t, r, Input{Config: decodeFile(t, "full.yaml")})
	held := map[string]bool{uuidN(3): true, sriovVFs[1]: true}

	// Scale down: the held instances are the ones kept.
	rep := reconcile(t, r, Input{Held: held, Config: decode(t, strings.NewReplacer("instances: 3", "instances: 1", "instances: 2", "instances: 1").Replace(readTestdata(t, "full.yaml")))})
	want := []Action{
		{GPU: mdevGPU, Op: OpRemoveMdev, Device: uuidN(1), Type: "GRID T4-4Q"},
		{GPU: mdevGPU, Op: OpRemoveMdev, Device: uuidN(2), Type: "GRID T4-4Q"},
		{GPU: sriovGPU, Op: OpClearVFType, Device: sriovVFs[0], Type: "NVIDIA L40-4Q"},
	}
	if d := cmp.Diff(want, rep.Actions); d != "" {
		t.Errorf("scale-down actions (-want +got):\n%s", d)
	}

	// Change the type: the held instances stay (and are Kept, not
	// advertised); the new type cannot be created beside them.
	rep = reconcile(t, r, Input{Held: held, Config: decodeFile(t, "one-8q-vf-off.yaml")})
	if len(rep.Actions) != 0 {
		t.Errorf("actions with every instance held: %v", rep.Actions)
	}
	if d := cmp.Diff([]string{uuidN(3), sriovVFs[1]}, ids(rep.Kept)); d != "" {
		t.Errorf("kept (-want +got):\n%s", d)
	}
	if len(rep.Devices) != 0 {
		t.Errorf("devices advertised: %v", ids(rep.Devices))
	}
	if p := problems(rep); len(p) != 1 || !strings.Contains(p[0], "wants 1 instances of GRID T4-8Q, has 0 and only 0 more") {
		t.Errorf("problems %q, want the 8Q shortfall", p)
	}

	// Released: now they go, and the new type is created.
	rep = reconcile(t, r, Input{Config: decodeFile(t, "one-8q.yaml")})
	want = []Action{
		{GPU: mdevGPU, Op: OpRemoveMdev, Device: uuidN(3), Type: "GRID T4-4Q"},
		{GPU: mdevGPU, Op: OpCreateMdev, Device: uuidN(4), Type: "GRID T4-8Q"},
	}
	if d := cmp.Diff(want, rep.Actions); d != "" {
		t.Errorf("after release (-want +got):\n%s", d)
	}
}

func TestReconcileLeavesMalformedGPUsAlone(t *testing.T) {
	f := newNode(t)
	r := newReconciler(f, fakeInUse{})
	reconcile(t, r, Input{Config: decodeFile(t, "full.yaml")})
	must(t, f.SetFile("bus/pci/devices/"+mdevGPU+"/mdev_supported_types/nvidia-223/available_instances", "lots"))
	must(t, f.SetFile("bus/pci/devices/"+sriovVFs[3]+"/nvidia/creatable_vgpu_types", "557 NVIDIA L40-4Q\n"))
	before := len(f.Writes())
	rep := reconcile(t, r, Input{Config: decodeFile(t, "malformed-gpus.yaml")})
	if w := f.Writes()[before:]; len(w) != 0 {
		t.Errorf("reconcile wrote to a malformed tree: %v", w)
	}
	p := problems(rep)
	if len(p) != 2 || !strings.Contains(p[0], "left unchanged") || !strings.Contains(p[0], "available_instances: \"lots\"") ||
		!strings.Contains(p[1], "creatable_vgpu_types") {
		t.Errorf("problems %q, want each malformed GPU named with its file", p)
	}
	if n := len(gpu(t, discover(t, f), mdevGPU).Mdevs); n != 3 {
		t.Errorf("%d mdevs left, want 3", n)
	}
}

func TestReconcilePassthrough(t *testing.T) {
	cfg := func(bind bool) NodeConfig {
		c := NodeConfig{GPUs: []GPUConfig{{Select: Selector{BDF: spareGPU}, Mode: ModePassthrough, BindVFIO: bind}}}
		must(t, c.Normalize())
		return c
	}
	for _, tc := range []struct {
		name        string
		bind        bool
		inUse       fakeInUse
		held        map[string]bool
		wantBound   bool
		wantProblem string
	}{
		{name: "bindVFIO not set", wantProblem: "bindVFIO is not set"},
		{name: "rebinds", bind: true, wantBound: true},
		{name: "in use", bind: true, inUse: fakeInUse{spareGPU: "pid 7 (nvidia-smi)"}, wantProblem: "used by pid 7"},
		{name: "held by a pod", bind: true, held: map[string]bool{spareGPU: true}, wantProblem: "held by a pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newNode(t)
			rep := reconcile(t, newReconciler(f, tc.inUse), Input{Config: cfg(tc.bind), Held: tc.held})
			bound := gpu(t, rep.Node, spareGPU).Driver == VFIODriver
			if bound != tc.wantBound {
				t.Errorf("bound to vfio-pci = %v, want %v", bound, tc.wantBound)
			}
			p := problems(rep)
			if tc.wantProblem == "" && len(p) != 0 || tc.wantProblem != "" && (len(p) != 1 || !strings.Contains(p[0], tc.wantProblem)) {
				t.Errorf("problems %q, want %q", p, tc.wantProblem)
			}
			if tc.wantBound && !slices.Equal(ids(rep.Devices), []string{spareGPU}) {
				t.Errorf("devices %v, want the GPU", ids(rep.Devices))
			}
		})
	}
}

func TestReconcileSelectors(t *testing.T) {
	f := newNode(t)
	rep := reconcile(t, newReconciler(f, fakeInUse{}), Input{
		Models: map[string]string{mdevGPU: "Tesla T4"},
		Config: decodeFile(t, "selectors.yaml")})
	// The bdf entry beats the model entry; index 3 beats deviceID for the
	// spare GPU; index 9 and the V100 select nothing.
	if d := cmp.Diff([]Action{{GPU: mdevGPU, Op: OpCreateMdev, Device: uuidN(1), Type: "GRID T4-4Q"}}, rep.Actions); d != "" {
		t.Errorf("actions (-want +got):\n%s", d)
	}
	want := []string{"gpus[4] (index 9) selects no GPU on this node", `gpus[5] (model "Tesla V100") selects no GPU on this node`}
	if d := cmp.Diff(want, problems(rep)); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}

	tie := reconcile(t, newReconciler(f, fakeInUse{}), Input{Config: decodeFile(t, "selectors-tie.yaml")})
	if p := problems(tie); len(p) != 1 || !strings.Contains(p[0], "selected by both gpus[0] and gpus[1]") || len(tie.Actions) != 0 {
		t.Errorf("tie: problems %q, actions %v", p, tie.Actions)
	}

	// A tie that a more specific entry settles is no problem.
	settled := reconcile(t, newReconciler(f, fakeInUse{}), Input{Config: decodeFile(t, "selectors-tie-settled.yaml")})
	if p := problems(settled); len(p) != 0 || len(settled.Actions) != 2 {
		t.Errorf("settled tie: problems %q, actions %v (want the 4Q removed and one 8Q created)", p, settled.Actions)
	}
}

func TestReconcileReportsWhatItCannotDo(t *testing.T) {
	f := newNode(t)
	rep := reconcile(t, newReconciler(f, fakeInUse{}), Input{Config: decodeFile(t, "cannot-do.yaml")})
	want := []string{
		`GPU 0000:41:00.0: left unchanged: vGPU type "GRID T4-16Q" is not offered (offers GRID T4-4Q (nvidia-222), GRID T4-8Q (nvidia-223))`,
		"GPU 0000:81:00.0: wants 3 VFs of NVIDIA L40-12Q; 1 more could not be given the type (no free VF offers it)",
		"GPU 0000:c1:00.0: wanted for vGPU but bound to vfio-pci; rebind it to the NVIDIA vGPU manager's driver by hand",
		"GPU 0000:e1:00.0: wanted for vGPU but it offers no vGPU types (is the NVIDIA vGPU manager installed; for SR-IOV GPUs, are VFs enabled with sriov-manage -e?)",
	}
	if d := cmp.Diff(want, problems(rep)); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
	if len(rep.Devices) != 2 {
		t.Errorf("devices %v, want the two L40-12Q VFs", ids(rep.Devices))
	}
}

func TestReconcileRemembersSRIOVTypesInUse(t *testing.T) {
	f := newNode(t)
	r := newReconciler(f, fakeInUse{})
	cfg := decodeFile(t, "sriov-types-in-use.yaml")
	reconcile(t, r, Input{Config: cfg})
	// With every VF it may take used, the free VFs list nothing; a fresh
	// discovery no longer knows the type's name and framebuffer.
	must(t, f.SetFile("bus/pci/devices/"+sriovVFs[0]+"/nvidia/creatable_vgpu_types", "ID : vGPU Name\n"))
	must(t, f.SetFile("bus/pci/devices/"+sriovVFs[1]+"/nvidia/creatable_vgpu_types", "ID : vGPU Name\n"))
	rep := reconcile(t, r, Input{Config: cfg})
	if len(rep.Actions) != 0 || len(rep.Problems) != 0 {
		t.Fatalf("actions %v, problems %v", rep.Actions, problems(rep))
	}
	for _, d := range rep.Devices {
		if d.TypeName != "NVIDIA L40-12Q" || d.FramebufferMiB != 12288 {
			t.Errorf("device %+v lost its type", d)
		}
	}
}

func TestReconcileReportsARefusedRemoval(t *testing.T) {
	f := newNode(t)
	r := newReconciler(f, fakeInUse{})
	reconcile(t, r, Input{Config: decodeFile(t, "full.yaml")})
	// A VM has the mdev open although no pod record says so: the kernel
	// refuses, and the reconcile says so instead of pretending.
	f.FailWrite("bus/mdev/devices/"+uuidN(2)+"/remove", syscall.EBUSY)
	rep := reconcile(t, r, Input{Config: decode(t, "gpus:\n- select: {bdf: \"0000:41:00.0\"}\n  mode: none\n")})
	want := []Action{
		{GPU: mdevGPU, Op: OpRemoveMdev, Device: uuidN(1), Type: "GRID T4-4Q"},
		{GPU: mdevGPU, Op: OpRemoveMdev, Device: uuidN(3), Type: "GRID T4-4Q"},
	}
	if d := cmp.Diff(want, rep.Actions); d != "" {
		t.Errorf("actions (-want +got):\n%s", d)
	}
	if p := problems(rep); len(p) != 1 || !strings.Contains(p[0], "remove mdev "+uuidN(2)) || !strings.Contains(p[0], "busy") {
		t.Errorf("problems %q, want the refused removal", p)
	}
}
