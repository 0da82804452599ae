package dmem

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

const (
	testUID = "0b6c11aa-0000-4000-8000-000000000001"
	testID  = "4f1e0c2a9b"
)

// mkdirs creates dirs under root.
func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestContainerDir(t *testing.T) {
	systemdPod := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b6c11aa_0000_4000_8000_000000000001.slice"
	tests := []struct {
		name    string
		dirs    []string
		c       Container
		want    string
		wantErr string
	}{
		{name: "systemd, containerd, burstable", dirs: []string{systemdPod + "/cri-containerd-" + testID + ".scope"},
			c:    Container{PodUID: testUID, QOSClass: corev1.PodQOSBurstable, ContainerID: "containerd://" + testID},
			want: systemdPod + "/cri-containerd-" + testID + ".scope"},
		{name: "systemd, cri-o, best effort", dirs: []string{"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b6c11aa_0000_4000_8000_000000000001.slice/crio-" + testID + ".scope"},
			c:    Container{PodUID: testUID, QOSClass: corev1.PodQOSBestEffort, ContainerID: "cri-o://" + testID},
			want: "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b6c11aa_0000_4000_8000_000000000001.slice/crio-" + testID + ".scope"},
		{name: "systemd, guaranteed: no QoS level", dirs: []string{"kubepods.slice/kubepods-pod0b6c11aa_0000_4000_8000_000000000001.slice/cri-containerd-" + testID + ".scope"},
			c:    Container{PodUID: testUID, QOSClass: corev1.PodQOSGuaranteed, ContainerID: "containerd://" + testID},
			want: "kubepods.slice/kubepods-pod0b6c11aa_0000_4000_8000_000000000001.slice/cri-containerd-" + testID + ".scope"},
		{name: "cgroupfs, burstable", dirs: []string{"kubepods/burstable/pod" + testUID + "/" + testID},
			c:    Container{PodUID: testUID, QOSClass: corev1.PodQOSBurstable, ContainerID: "containerd://" + testID},
			want: "kubepods/burstable/pod" + testUID + "/" + testID},
		{name: "cgroupfs, guaranteed", dirs: []string{"kubepods/pod" + testUID + "/" + testID},
			c:    Container{PodUID: testUID, QOSClass: corev1.PodQOSGuaranteed, ContainerID: "cri-o://" + testID},
			want: "kubepods/pod" + testUID + "/" + testID},
		{name: "QoS unknown: every level tried", dirs: []string{"kubepods/besteffort/pod" + testUID + "/" + testID},
			c:    Container{PodUID: testUID, ContainerID: "containerd://" + testID},
			want: "kubepods/besteffort/pod" + testUID + "/" + testID},
		{name: "pod there, container not yet", dirs: []string{systemdPod},
			c:       Container{PodUID: testUID, QOSClass: corev1.PodQOSBurstable, ContainerID: "containerd://" + testID},
			wantErr: "no cgroup directory"},
		{name: "wrong QoS level is not searched", dirs: []string{"kubepods/besteffort/pod" + testUID + "/" + testID},
			c:       Container{PodUID: testUID, QOSClass: corev1.PodQOSBurstable, ContainerID: "containerd://" + testID},
			wantErr: "no cgroup directory"},
		{name: "no runtime", c: Container{PodUID: testUID, ContainerID: testID}, wantErr: "want <runtime>://"},
		{name: "path in the ID", c: Container{PodUID: testUID, ContainerID: "containerd://../../x"}, wantErr: "want <runtime>://"},
		{name: "path in the UID", c: Container{PodUID: "../x", ContainerID: "containerd://" + testID}, wantErr: "not usable in a cgroup path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			mkdirs(t, root, tt.dirs...)
			got, err := ContainerDir(root, tt.c)
			if !errorMatches(t, err, tt.wantErr) {
				if tt.wantErr == "no cgroup directory" && !errors.Is(err, ErrNoCgroup) {
					t.Errorf("error %v does not wrap ErrNoCgroup", err)
				}
				return
			}
			if diff := cmp.Diff(filepath.Join(root, tt.want), got); diff != "" {
				t.Errorf("dir (-want +got):\n%s", diff)
			}
		})
	}
}
